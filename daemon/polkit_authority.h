// portierd's client of polkit (org.freedesktop.PolicyKit1). A check never blocks the event
// loop: an interactive one can take as long as somebody needs to type a password, and in
// the meantime portierd has to keep serving other callers, timers and drift repair.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>

namespace portier {

enum class PolkitAnswer {
  granted,
  refused,               // no, and no authentication would change that
  needs_authentication,  // authentication would, but interaction was not allowed or no agent serves
                         // the caller
  dismissed,             // an authentication agent asked, and the user cancelled it
  absent,                // polkitd is not on the bus
  failed,                // polkit answered with an error (logged)
  timed_out,             // no answer in time; the check was cancelled
  busy,                  // too many checks are waiting already
  caller_left,           // the caller left the bus while it was asked to authenticate
};

class PolkitAuthority {
 public:
  // polkit answers in milliseconds from its rules and the action's defaults.
  static constexpr std::chrono::seconds kNonInteractiveLimit{5};
  // Time enough to read a prompt and type a password (portierctl waits a little longer).
  static constexpr std::chrono::seconds kInteractiveLimit{120};
  // Callers waiting for an agent hold a few hundred bytes each; caps keep that bounded, and
  // the one per user keeps one user's unanswered prompts from locking out the others.
  static constexpr std::size_t kMaxPending = 64;
  static constexpr std::size_t kMaxPendingPerUser = 8;
  // How long the check of a caller that left waits for polkit's own answer before it is
  // cancelled (cancel_due()). A caller's agent usually goes with it (Ctrl-C on portierctl
  // ends its pkttyagent too), and polkitd then ends the check by itself. A cancel that
  // reaches polkitd while it takes in the agent's disconnection can deadlock it for good:
  // polkitd 122 with GLib 2.74 (Debian 12) emits the check's "cancelled" signal on its main
  // thread, whose handler calls the agent (CancelAuthentication) and waits for the
  // connection's lock, while the GDBus worker, holding that lock to finish the agent's
  // BeginAuthentication call, waits in g_cancellable_disconnect() for the emission to end.
  // Seen in test_runtime_polkit_agent once in 10 to 20 runs, with gdb on polkitd.
  static constexpr std::chrono::milliseconds kCancelGrace{1000};

  explicit PolkitAuthority(sdbus::IConnection& connection);
  ~PolkitAuthority();
  PolkitAuthority(const PolkitAuthority&) = delete;
  PolkitAuthority& operator=(const PolkitAuthority&) = delete;

  /// Asks whether the bus client `sender` (of user `uid`) may use `action`. With `interactive`,
  /// polkit may have the caller's authentication agent ask for a password first. `done` is called
  /// exactly once: right away when too many checks wait, otherwise from the connection's
  /// event loop when polkit answers or the limit passes. Not after this object is gone.
  void check(const std::string& sender, uid_t uid, const std::string& action, bool interactive,
             std::function<void(PolkitAnswer)> done);

  /// Cancels the checks whose callers left kCancelGrace ago or more and which polkit has not
  /// answered yet; returns when it has to be called next (nullopt: no check waits for it).
  std::optional<std::chrono::steady_clock::time_point> cancel_due(
      std::chrono::steady_clock::time_point now);

 private:
  void cancel(const std::string& cancellation_id, const std::string& sender);

  struct DueCancel {
    std::chrono::steady_clock::time_point at;
    std::string sender;
  };

  sdbus::IConnection& connection_;
  std::unique_ptr<sdbus::IProxy> proxy_;
  // For each interactive check: the match that cancels it when its caller leaves the bus,
  // so that no agent dialog stays open for somebody who is gone.
  std::map<std::string, sdbus::Slot> caller_watches_;
  // The checks of callers that left, by cancellation id, until polkit answers them.
  std::map<std::string, DueCancel> due_cancels_;
  std::map<uid_t, std::size_t> pending_by_user_;
  std::uint64_t checks_started_ = 0;
};

/// Whether a method call carries ALLOW_INTERACTIVE_AUTHORIZATION: its sender is ready to
/// wait while it is asked to authenticate.
bool allows_interactive_authorization(const sdbus::Message& message);

}  // namespace portier
