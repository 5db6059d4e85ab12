#include "state_store.h"

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

#include "runtime_state.h"

namespace portier {
namespace {

const char* file_name(StateFile file) {
  switch (file) {
    case StateFile::runtime:
      return "runtime.toml";
    case StateFile::last_good:
      return "last-good.toml";
    case StateFile::previous_good:
      return "previous-good.toml";
    case StateFile::before_apply:
      return "policy-before-apply.toml";
    case StateFile::applied:
      return "policy-applied.toml";
  }
  return "unknown.toml";
}

}  // namespace

StateDirectory::StateDirectory(std::string dir) : dir_(std::move(dir)) {}

StateDirectory::~StateDirectory() = default;

std::string StateDirectory::name(StateFile file) const {
  return (std::filesystem::path(dir_) / file_name(file)).string();
}

std::optional<std::string> StateDirectory::read(StateFile file) const {
  return read_text_file(name(file));
}

void StateDirectory::write(StateFile file, const std::string& text) {
  write_file_atomically(name(file), text);
}

void StateDirectory::replace_keeping(StateFile file, StateFile keep, const std::string& text) {
  const std::string path = name(file);
  const std::string kept = name(keep);
  write_file_atomically(path, text, [&] {
    // The old file itself takes its second name, by a hard link: no copy of it to write
    // and fsync (last-good.toml of a 10,000-rule policy is a megabyte, on every reload that
    // changes it). Its text is on disk already; the folder's fsync after the rename makes
    // both names durable.
    const std::string temp = kept + ".tmp";
    ::unlink(temp.c_str());
    if (::link(path.c_str(), temp.c_str()) != 0) {
      if (errno == ENOENT) return;  // nothing to keep
      // A file system without hard links: a copy of its own, as before.
      if (auto old = read_text_file(path)) write_file_atomically(kept, *old);
      return;
    }
    if (::rename(temp.c_str(), kept.c_str()) != 0) {
      int error = errno;
      ::unlink(temp.c_str());
      throw std::system_error(error, std::generic_category(),
                              "cannot rename " + temp + " to " + kept);
    }
  });
}

void StateDirectory::remove(StateFile file) {
  std::error_code ignored;
  std::filesystem::remove(name(file), ignored);
}

void StateDirectory::post_runtime(std::string text, std::uint64_t generation) {
  if (!writer_) writer_ = std::make_unique<StateWriter>(name(StateFile::runtime));
  writer_->post(std::move(text), generation);
}

int StateDirectory::runtime_fd() const { return writer_ ? writer_->fd() : -1; }

std::vector<StateWriter::Outcome> StateDirectory::take_runtime_outcomes() {
  return writer_ ? writer_->take_outcomes() : std::vector<StateWriter::Outcome>{};
}

void StateDirectory::wait_for_runtime() {
  if (writer_) writer_->wait_until_written();
}

}  // namespace portier
