#include "saved_replies.h"

#include <cstdio>
#include <exception>
#include <utility>

namespace portier {

void SavedReplies::after(std::uint64_t needed, Reply reply) {
  waiting_.push_back({needed, std::move(reply)});
}

void SavedReplies::settled(std::uint64_t generation, const std::string& error) {
  while (!waiting_.empty() && waiting_.front().needed <= generation) {
    Reply reply = std::move(waiting_.front().reply);
    waiting_.pop_front();
    // This runs from the event loop, where nothing may escape.
    try {
      reply(error.empty() ? nullptr : &error);
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portierd: cannot answer a call: %s\n", failure.what());
    }
  }
}

}  // namespace portier
