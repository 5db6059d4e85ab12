#include "policy_file_state.h"

#include <functional>
#include <utility>

#include "runtime_state.h"

namespace portier {
namespace {

std::size_t hash_of(const std::string& text) { return std::hash<std::string>()(text); }

}  // namespace

PolicyFileState::PolicyFileState(std::string policy_path, StateStore* state)
    : policy_path_(std::move(policy_path)), state_(state) {}

void PolicyFileState::loaded(const std::map<std::string, std::string>& sources) {
  loaded_.clear();
  for (const auto& [file, text] : sources) loaded_[file] = hash_of(text);
}

std::optional<std::string> PolicyFileState::edited_since_loaded() const {
  for (const auto& [file, hash] : loaded_) {
    auto text = read_text_file(file);
    if (!text || hash_of(*text) != hash) return file;
  }
  return std::nullopt;
}

void PolicyFileState::replacing(const std::string& before, const std::string& after) {
  if (!state_) return;
  // `after` first: a crash between the two leaves a pair that does not match the file.
  state_->write(StateFile::applied, after);
  state_->write(StateFile::before_apply, before);
}

std::optional<std::string> PolicyFileState::replaced_text() const {
  if (!state_) return std::nullopt;
  auto before = state_->read(StateFile::before_apply);
  auto applied = state_->read(StateFile::applied);
  auto now = read_text_file(policy_path_);
  if (!before || !applied || !now || *applied != *now) return std::nullopt;
  return before;
}

void PolicyFileState::forget_replaced() {
  if (!state_) return;
  state_->remove(StateFile::before_apply);
  state_->remove(StateFile::applied);
}

}  // namespace portier
