#include "policy_file_state.h"

#include <array>
#include <fstream>
#include <functional>
#include <string_view>
#include <utility>

#include "runtime_state.h"

namespace portier {
namespace {

// Texts are hashed kHashChunk bytes at a time, so that a file is hashed as it is read and
// never held whole: status asks on every call, portierctl reload calls status, and a
// 10,000-rule policy is a megabyte of fresh heap to fault in after the heap decay.
constexpr std::size_t kHashChunk = 64 * 1024;

std::size_t with_chunk(std::size_t hash, std::string_view chunk) {
  return hash * 1000003u ^ std::hash<std::string_view>()(chunk);
}

std::size_t hash_of(std::string_view text) {
  std::size_t hash = 0;
  for (std::size_t at = 0; at < text.size(); at += kHashChunk)
    hash = with_chunk(hash, text.substr(at, kHashChunk));
  return hash;
}

// hash_of() the file's text; none if it cannot be read.
std::optional<std::size_t> hash_of_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::array<char, kHashChunk> chunk;
  std::size_t hash = 0;
  for (;;) {
    in.read(chunk.data(), chunk.size());  // whole chunks until the end, as hash_of() cuts them
    const auto got = static_cast<std::size_t>(in.gcount());
    if (got > 0) hash = with_chunk(hash, std::string_view(chunk.data(), got));
    if (got < chunk.size()) break;
  }
  if (in.bad()) return std::nullopt;
  return hash;
}

}  // namespace

PolicyFileState::PolicyFileState(std::string policy_path, StateStore* state)
    : policy_path_(std::move(policy_path)), state_(state) {}

void PolicyFileState::loaded(const std::map<std::string, std::string>& sources) {
  loaded_.clear();
  for (const auto& [file, text] : sources) loaded_[file] = hash_of(text);
}

std::optional<std::string> PolicyFileState::edited_since_loaded() const {
  for (const auto& [file, hash] : loaded_) {
    auto now = hash_of_file(file);
    if (!now || *now != hash) return file;
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
