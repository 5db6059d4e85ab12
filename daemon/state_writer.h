// Writes a state file on a thread of its own, so that portierd's event loop never waits
// for the disk: a toggle's fsync can take tens of milliseconds while other processes
// write, and the next D-Bus call would wait behind it.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace portier {

class StateWriter {
 public:
  explicit StateWriter(std::string path);
  /// Writes what is still pending, then stops.
  ~StateWriter();
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  /// The file's new contents, written atomically (temp file, fsync, rename) soon. A text
  /// posted while another is waiting replaces it: only the newest state matters.
  void post(std::string text);
  /// Returns once everything posted so far is on disk (or failed, with a warning).
  void wait_until_written();

 private:
  void run();

  const std::string path_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable written_;
  std::optional<std::string> pending_;
  bool writing_ = false;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything above is ready
};

}  // namespace portier
