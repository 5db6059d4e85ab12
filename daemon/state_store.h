// The port between the daemon core and its state directory (/var/lib/portier): the
// runtime changes, the last two good policies, and the policy file's text around an
// apply. StateDirectory keeps them as files; unit tests of the core use a fake in memory.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "state_writer.h"

namespace portier {

enum class StateFile {
  runtime,        // runtime.toml: toggles, timed rules, set elements, panic
  last_good,      // last-good.toml: the last policy the kernel accepted, self-contained
  previous_good,  // previous-good.toml: the one before it, for `portierctl rollback`
  before_apply,   // policy-before-apply.toml: the policy file before an apply replaced it
  applied,        // policy-applied.toml: what that apply wrote
};

class StateStore {
 public:
  /// The file's whole text; none if it is not there or cannot be read.
  virtual std::optional<std::string> read(StateFile file) const = 0;
  /// Replaces the file's text so that a crash leaves the old or the new; throws on failure.
  virtual void write(StateFile file, const std::string& text) = 0;
  /// write(file, text), and `keep` takes what `file` held before, if anything: a crash
  /// leaves both old or `keep` holding the old text and `file` the old or the new one.
  /// Throws on failure: `file` then holds its old text (and `keep` its own or that).
  virtual void replace_keeping(StateFile file, StateFile keep, const std::string& text) = 0;
  /// Makes `text` the last good policy away from the event loop: replace_keeping(last_good,
  /// previous_good, text) soon, on a thread of its own, unless last_good holds `text`
  /// already. Texts are written in the order posted (each one's predecessor becomes
  /// previous_good); a failure is logged, and the files keep what they held.
  virtual void post_last_good(std::string text) = 0;
  /// Returns once every posted last good policy is written (or failed).
  virtual void wait_for_last_good() = 0;
  /// Removes the file, if it is there.
  virtual void remove(StateFile file) = 0;
  /// What diagnostics and messages call the file.
  virtual std::string name(StateFile file) const = 0;

  /// runtime.toml changes after every call: it is written away from the event loop, as
  /// StateWriter does (post(), fd(), take_outcomes(), wait_until_written()).
  virtual void post_runtime(std::string text, std::uint64_t generation) = 0;
  /// Readable when take_runtime_outcomes() has outcomes; -1 before the first post.
  virtual int runtime_fd() const = 0;
  virtual std::vector<StateWriter::Outcome> take_runtime_outcomes() = 0;
  /// Returns once everything posted is on disk (or failed).
  virtual void wait_for_runtime() = 0;

  virtual ~StateStore() = default;
};

/// The state files in one directory, which must exist.
class StateDirectory final : public StateStore {
 public:
  explicit StateDirectory(std::string dir);
  ~StateDirectory() override;  // writes what is posted and not yet written

  std::optional<std::string> read(StateFile file) const override;
  void write(StateFile file, const std::string& text) override;
  void replace_keeping(StateFile file, StateFile keep, const std::string& text) override;
  void post_last_good(std::string text) override;
  void wait_for_last_good() override;
  void remove(StateFile file) override;
  std::string name(StateFile file) const override;

  void post_runtime(std::string text, std::uint64_t generation) override;
  int runtime_fd() const override;
  std::vector<StateWriter::Outcome> take_runtime_outcomes() override;
  void wait_for_runtime() override;

 private:
  class KeptPolicyWriter;

  std::string dir_;
  std::unique_ptr<StateWriter> writer_;  // made at the first post
  // Made at the first post_last_good(); declared last, so that it is gone (its texts
  // written) while everything it uses is still here.
  std::unique_ptr<KeptPolicyWriter> kept_writer_;
};

}  // namespace portier
