#include "state_writer.h"

#include <cstdio>
#include <exception>
#include <utility>

#include "runtime_state.h"

namespace portier {

StateWriter::StateWriter(std::string path) : path_(std::move(path)), thread_([this] { run(); }) {}

StateWriter::~StateWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void StateWriter::post(std::string text) {
  {
    std::lock_guard lock(mutex_);
    pending_ = std::move(text);
  }
  wake_.notify_one();
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
    pending_.reset();
    writing_ = true;
    lock.unlock();
    try {
      write_file_atomically(path_, text);
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portierd: warning: runtime changes not saved: %s\n", failure.what());
    }
    lock.lock();
    writing_ = false;
    written_.notify_all();
  }
}

}  // namespace portier
