// Writes a state file on a thread of its own, so that portierd's event loop never waits
// for the disk: a toggle's fsync can take tens of milliseconds while other processes
// write, and the next D-Bus call would wait behind it.
//
// Each text is posted with a generation number; once it is on disk (or has failed) the
// writer says so through fd(), which the event loop polls, and a D-Bus call that changed
// the state is answered only then. Group commit: texts posted while a write runs replace
// each other, and the next write takes the newest, which includes all the others.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace portier {

class StateWriter {
 public:
  /// How one write ended: every generation up to `generation` is on disk, or, with an
  /// error, is not (and the file holds what it held before).
  struct Outcome {
    std::uint64_t generation = 0;
    std::string error;  // empty: written
  };

  /// Writes `text` to `path` atomically or throws; tests stand in a slow or failing disk.
  using WriteFile = std::function<void(const std::string& path, const std::string& text)>;

  /// `write` defaults to write_file_atomically() (runtime_state.h).
  explicit StateWriter(std::string path, WriteFile write = {});
  /// Writes what is still pending, then stops.
  ~StateWriter();
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  /// The file's new contents, written atomically (temp file, fsync, rename, fsync of the
  /// folder) soon. A text posted while another is waiting replaces it: only the newest
  /// state matters. Generations must grow (0: nobody waits for this one).
  void post(std::string text, std::uint64_t generation = 0);
  /// Readable (an eventfd) when outcomes are waiting for take_outcomes().
  int fd() const { return event_fd_; }
  /// The writes finished since the last call, oldest first; clears fd()'s readiness.
  std::vector<Outcome> take_outcomes();
  /// Returns once everything posted so far is on disk (or failed, with a warning).
  void wait_until_written();

 private:
  void run();

  const std::string path_;
  const WriteFile write_;
  int event_fd_ = -1;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable written_;
  std::optional<std::string> pending_;
  std::uint64_t pending_generation_ = 0;
  std::vector<Outcome> outcomes_;
  bool writing_ = false;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything above is ready
};

}  // namespace portier
