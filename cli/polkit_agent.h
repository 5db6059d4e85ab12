// polkit's text agent for portierctl's changing calls, as systemctl does it: on a terminal a
// non-root user can be asked for a password instead of being refused.
#pragma once

#include <sys/types.h>

#include <memory>

namespace portier::cli {

/// `portierctl --no-ask-password ...` turns interactive authorization off.
void set_ask_password(bool ask);

/// Whether polkit may ask this process for a password: not root, stdin is a terminal, and
/// no --no-ask-password. Scripts and cron jobs get a plain refusal instead of a prompt.
bool may_ask_password();

/// A pkttyagent child, registered with polkit for this process, ended (by its PID) when
/// this goes away.
class PolkitAgent {
 public:
  /// Starts /usr/bin/pkttyagent and waits until it has registered; nullptr when there is
  /// none or it gave up (then a desktop agent of the session may still answer).
  static std::unique_ptr<PolkitAgent> start();
  explicit PolkitAgent(pid_t pid) : pid_(pid) {}
  ~PolkitAgent();
  PolkitAgent(const PolkitAgent&) = delete;
  PolkitAgent& operator=(const PolkitAgent&) = delete;

 private:
  pid_t pid_;
};

}  // namespace portier::cli
