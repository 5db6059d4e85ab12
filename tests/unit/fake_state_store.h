// A state directory for unit tests, in memory: what a StateDirectory would hold, written
// at once (a posted runtime state is on "disk" before post_runtime() returns), with a
// switch that makes every write fail as a full disk would.
#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "state_store.h"

namespace portier::testing {

class FakeStateStore final : public StateStore {
 public:
  std::optional<std::string> read(StateFile file) const override {
    auto found = files.find(file);
    if (found == files.end()) return std::nullopt;
    return found->second;
  }
  void write(StateFile file, const std::string& text) override {
    if (full) throw std::runtime_error(name(file) + ": No space left on device");
    files[file] = text;
  }
  void replace_keeping(StateFile file, StateFile keep, const std::string& text) override {
    if (full) throw std::runtime_error(name(file) + ": No space left on device");
    if (auto old = read(file)) files[keep] = *old;
    files[file] = text;
  }
  // Written at once, as StateDirectory's thread would (a failure only leaves the files);
  // with hold_last_good, only when wait_for_last_good() comes, as a thread that has not
  // got to them yet.
  void post_last_good(std::string text) override {
    if (hold_last_good) {
      held_last_good.push_back(std::move(text));
      return;
    }
    if (auto old = read(StateFile::last_good); old && *old == text) return;
    try {
      replace_keeping(StateFile::last_good, StateFile::previous_good, text);
    } catch (const std::exception&) {
    }
  }
  void wait_for_last_good() override {
    const bool held = std::exchange(hold_last_good, false);
    for (std::string& text : std::exchange(held_last_good, {})) post_last_good(std::move(text));
    hold_last_good = held;
  }
  void remove(StateFile file) override { files.erase(file); }
  std::string name(StateFile file) const override {
    switch (file) {
      case StateFile::runtime:
        return "state/runtime.toml";
      case StateFile::last_good:
        return "state/last-good.toml";
      case StateFile::previous_good:
        return "state/previous-good.toml";
      case StateFile::before_apply:
        return "state/policy-before-apply.toml";
      case StateFile::applied:
        return "state/policy-applied.toml";
    }
    return "state/?";
  }
  void post_runtime(std::string text, std::uint64_t generation) override {
    try {
      write(StateFile::runtime, text);
      outcomes.push_back({generation, ""});
    } catch (const std::exception& failure) {
      outcomes.push_back({generation, failure.what()});
    }
  }
  // Outcomes are ready as soon as they are posted: nothing to wait for.
  int runtime_fd() const override { return -1; }
  std::vector<StateWriter::Outcome> take_runtime_outcomes() override {
    return std::exchange(outcomes, {});
  }
  void wait_for_runtime() override {}

  /// The file's text, empty if it is not there (as reading a missing file in a test).
  std::string text(StateFile file) const { return read(file).value_or(""); }

  std::map<StateFile, std::string> files;
  std::vector<StateWriter::Outcome> outcomes;
  bool full = false;  // every write fails
  bool hold_last_good = false;  // post_last_good() waits for wait_for_last_good()
  std::vector<std::string> held_last_good;
};

}  // namespace portier::testing
