// Replies to D-Bus calls that changed the runtime state, held until that state is on disk:
// an acknowledged change must survive a crash right after the reply (SIGKILL, power loss).
// The state writer numbers what it writes; each held reply waits for the number of its
// change, and one write answers every call whose change it contains (group commit).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>

namespace portier {

class SavedReplies {
 public:
  /// `error` is null once the state is on disk, else why it is not.
  using Reply = std::function<void(const std::string* error)>;

  /// Sends `reply` once generation `needed` of the state is written (or failed to be).
  void after(std::uint64_t needed, Reply reply);
  /// A write of every generation up to `generation` finished; `error` empty: on disk.
  /// Answers the replies waiting for it, in the order they came.
  void settled(std::uint64_t generation, const std::string& error);
  std::size_t waiting() const { return waiting_.size(); }

 private:
  struct Waiting {
    std::uint64_t needed;
    Reply reply;
  };
  std::deque<Waiting> waiting_;  // by `needed`, which only grows
};

}  // namespace portier
