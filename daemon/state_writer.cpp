#include "state_writer.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <system_error>
#include <utility>

#include "runtime_state.h"

namespace portier {
namespace {

int make_event_fd() {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

}  // namespace

StateWriter::StateWriter(std::string path, WriteFile write)
    : path_(std::move(path)),
      write_(write ? std::move(write)
                   : WriteFile([](const std::string& file, const std::string& text) {
                       write_file_atomically(file, text);
                     })),
      event_fd_(make_event_fd()),
      thread_([this] { run(); }) {}

StateWriter::~StateWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  ::close(event_fd_);
}

void StateWriter::post(std::string text, std::uint64_t generation) {
  {
    std::lock_guard lock(mutex_);
    pending_ = std::move(text);
    pending_generation_ = generation;
  }
  wake_.notify_one();
}

std::vector<StateWriter::Outcome> StateWriter::take_outcomes() {
  std::uint64_t count = 0;
  // EAGAIN when nothing was signalled. Under _FORTIFY_SOURCE a (void) cast does not
  // silence -Wunused-result in GCC; a named, unused result does.
  [[maybe_unused]] ssize_t got = ::read(event_fd_, &count, sizeof count);
  std::lock_guard lock(mutex_);
  return std::exchange(outcomes_, {});
}

void StateWriter::wait_until_written() {
  std::unique_lock lock(mutex_);
  written_.wait(lock, [this] { return !pending_ && !writing_; });
}

void StateWriter::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return pending_ || stopping_; });
    if (!pending_) return;  // stopping, and everything is written
    std::string text = std::move(*pending_);
    std::uint64_t generation = pending_generation_;
    pending_.reset();
    writing_ = true;
    lock.unlock();
    Outcome outcome{generation, {}};
    try {
      write_(path_, text);
    } catch (const std::exception& failure) {
      outcome.error = failure.what();
      std::fprintf(stderr, "portierd: error: runtime changes not saved: %s\n", failure.what());
    }
    lock.lock();
    outcomes_.push_back(std::move(outcome));
    writing_ = false;
    written_.notify_all();
    std::uint64_t one = 1;
    // Only fails if the counter would overflow.
    [[maybe_unused]] ssize_t put = ::write(event_fd_, &one, sizeof one);
  }
}

}  // namespace portier
