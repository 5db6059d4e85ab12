// What portierd knows about the policy file beside what the kernel has: the texts it had
// when it was last loaded (so that status can say when the file was edited since), and a
// copy of the file as it was before an apply replaced it (so that a rollback puts the file
// back with the ruleset, and a restart loads what the rollback chose).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>

#include "state_store.h"

namespace portier {

class PolicyFileState {
 public:
  /// `state` null: keep no copies. Not owned.
  PolicyFileState(std::string policy_path, StateStore* state);

  /// The policy was loaded from these files (file name -> text, ParsedPolicy::sources).
  void loaded(const std::map<std::string, std::string>& sources);
  /// The first loaded file whose text is not what it was at loaded(), if any.
  std::optional<std::string> edited_since_loaded() const;

  /// An apply replaces the policy file's text `before` with `after`: keeps both, so that
  /// a rollback can put `before` back while the file still holds `after`. Throws when the
  /// copies cannot be written (the file is then not to be replaced).
  void replacing(const std::string& before, const std::string& after);
  /// The text the file held before the last apply replaced it, if the file still holds
  /// what that apply wrote (an edit since then is the administrator's and stays).
  std::optional<std::string> replaced_text() const;
  /// The copies are no longer needed (put back, or superseded).
  void forget_replaced();

 private:
  std::string policy_path_;
  StateStore* state_;
  std::map<std::string, std::size_t> loaded_;  // file -> hash of its text
};

}  // namespace portier
