// What changed at run time on top of the policy file: rule toggles, timed rules and set
// elements. Kept in the state directory so a restarted daemon puts it back.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy.h"
#include "services.h"

namespace portier {

using Clock = std::chrono::system_clock;

/// A rule added at run time that removes itself at `expires`.
struct TimedRule {
  Rule rule;         // name "timed-N", enabled
  std::string text;  // the rule as policy text ([[rule]] ...), as it is kept on disk
  Clock::time_point expires;
};

/// A set element added at run time; `expires` for sets with a timeout.
struct RuntimeElement {
  std::string set;
  std::string element;  // as the user wrote it: address, network or port
  std::optional<Clock::time_point> expires;
  friend bool operator==(const RuntimeElement&, const RuntimeElement&) = default;
};

struct RuntimeState {
  std::map<std::string, bool> toggles;  // rule or forward name -> enabled
  std::vector<TimedRule> timed_rules;
  std::uint64_t next_timed_id = 1;
  std::vector<RuntimeElement> added_elements;
  std::vector<RuntimeElement> removed_elements;  // policy elements taken out at run time
  bool panic = false;
  bool panic_keep_established = false;
};

/// TOML text of the state; times as milliseconds since the epoch.
std::string write_runtime_state(const RuntimeState& state);

/// Parses write_runtime_state() output. Bad content is an exception naming the file:
/// the daemon then starts without the overlay rather than with half of it.
RuntimeState read_runtime_state(const std::string& text, const std::string& file_name,
                                const SystemTables& tables);

/// Writes `text` to `path` so a crash leaves the old content or the new, never a mix:
/// a temporary file in the same folder, fsync, rename, fsync of the folder.
void write_file_atomically(const std::string& path, const std::string& text);

/// write_file_atomically(), calling `before_rename` once the new text is on disk under its
/// temporary name and before it takes `path`: what it does (another rename in the same
/// folder) is made durable by the same fsync of the folder. If it throws, `path` and the
/// folder are as they were, apart from what it did itself.
void write_file_atomically(const std::string& path, const std::string& text,
                           const std::function<void()>& before_rename);

/// The whole content of the file at `path`; none if it cannot be opened.
std::optional<std::string> read_text_file(const std::string& path);

}  // namespace portier
