#include "policy_file_state.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <utility>

#include "runtime_state.h"

namespace portier {
namespace {

// The state directory's copies, verbatim: the one before an apply, and what the apply wrote.
constexpr const char* kBefore = "policy-before-apply.toml";
constexpr const char* kApplied = "policy-applied.toml";

std::size_t hash_of(const std::string& text) { return std::hash<std::string>()(text); }

}  // namespace

PolicyFileState::PolicyFileState(std::string policy_path, std::string state_dir)
    : policy_path_(std::move(policy_path)), state_dir_(std::move(state_dir)) {}

std::string PolicyFileState::copy(const char* name) const {
  return (std::filesystem::path(state_dir_) / name).string();
}

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
  if (state_dir_.empty()) return;
  // `after` first: a crash between the two leaves a pair that does not match the file.
  write_file_atomically(copy(kApplied), after);
  write_file_atomically(copy(kBefore), before);
}

std::optional<std::string> PolicyFileState::replaced_text() const {
  if (state_dir_.empty()) return std::nullopt;
  auto before = read_text_file(copy(kBefore));
  auto applied = read_text_file(copy(kApplied));
  auto now = read_text_file(policy_path_);
  if (!before || !applied || !now || *applied != *now) return std::nullopt;
  return before;
}

void PolicyFileState::forget_replaced() {
  if (state_dir_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove(copy(kBefore), ignored);
  std::filesystem::remove(copy(kApplied), ignored);
}

}  // namespace portier
