#include "state_store.h"

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "log.h"
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

// The last good policy's writes, on a thread: a reload's reply, and the calls portierctl
// makes right after it, do not wait for a megabyte's write and two fsyncs (about 10 ms on
// a VM's disk, more on a router's flash). Unlike runtime.toml's StateWriter it does not
// let a newer text replace a waiting one: each text's predecessor is the previous good
// policy that `portierctl rollback` goes back to.
class StateDirectory::KeptPolicyWriter {
 public:
  explicit KeptPolicyWriter(StateDirectory& store) : store_(store), thread_([this] { run(); }) {}
  ~KeptPolicyWriter() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  KeptPolicyWriter(const KeptPolicyWriter&) = delete;
  KeptPolicyWriter& operator=(const KeptPolicyWriter&) = delete;

  void post(std::string text) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(text));
    }
    wake_.notify_one();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    written_.wait(lock, [this] { return queue_.empty() && !writing_; });
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything is written
      std::string text = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      lock.unlock();
      try {
        // A reload of an unchanged policy (the common case) leaves both copies as they
        // are: rewriting the same text would cost a write and an fsync for nothing.
        auto old = store_.read(StateFile::last_good);
        if (!old || *old != text)
          store_.replace_keeping(StateFile::last_good, StateFile::previous_good, text);
      } catch (const std::exception& failure) {
        // The new ruleset is in force; only the fallback copy for a later start is stale.
        log_line(std::string("warning: last good policy not saved: ") + failure.what());
      }
      lock.lock();
      writing_ = false;
      written_.notify_all();
    }
  }

  StateDirectory& store_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable written_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything above is ready
};

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

void StateDirectory::post_last_good(std::string text) {
  if (!kept_writer_) kept_writer_ = std::make_unique<KeptPolicyWriter>(*this);
  kept_writer_->post(std::move(text));
}

void StateDirectory::wait_for_last_good() {
  if (kept_writer_) kept_writer_->wait();
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
