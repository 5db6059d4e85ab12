#include "polkit_authority.h"

#include <systemd/sd-bus.h>

#include <cstdio>
#include <map>

namespace portier {
namespace {

constexpr const char* kPolkitService = "org.freedesktop.PolicyKit1";
constexpr const char* kAuthorityPath = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* kAuthorityInterface = "org.freedesktop.PolicyKit1.Authority";
constexpr std::uint32_t kAllowUserInteraction = 1;

using Subject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
using AuthorizationResult = sdbus::Struct<bool, bool, std::map<std::string, std::string>>;

// sdbus-c++ 1.2 has no accessor for a message's header flags, but keeps the sd_bus_message
// in a protected member; a pointer to that member taken in a derived class reads it.
struct RawMessage : sdbus::Message {
  static sd_bus_message* of(const sdbus::Message& message) {
    return static_cast<sd_bus_message*>(message.*(&RawMessage::msg_));
  }
};

bool is_name_missing(const std::string& error_name) {
  return error_name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
         error_name == "org.freedesktop.DBus.Error.NameHasNoOwner";
}

bool is_timeout(const std::string& error_name) {
  return error_name == "org.freedesktop.DBus.Error.NoReply" ||
         error_name == "org.freedesktop.DBus.Error.Timeout" ||
         error_name == "System.Error.ETIMEDOUT";
}

PolkitAnswer answer_of(const AuthorizationResult& result) {
  if (result.get<0>()) return PolkitAnswer::granted;
  if (result.get<1>()) return PolkitAnswer::needs_authentication;
  const auto& details = result.get<2>();
  if (auto it = details.find("polkit.dismissed"); it != details.end() && it->second == "true")
    return PolkitAnswer::dismissed;
  return PolkitAnswer::refused;
}

}  // namespace

bool allows_interactive_authorization(const sdbus::Message& message) {
  return sd_bus_message_get_allow_interactive_authorization(RawMessage::of(message)) > 0;
}

PolkitAuthority::PolkitAuthority(sdbus::IConnection& connection)
    : connection_(connection),
      proxy_(sdbus::createProxy(connection, kPolkitService, kAuthorityPath)) {
  proxy_->finishRegistration();
}

// Destroying the proxy drops its calls still waiting, so no `done` runs after this.
PolkitAuthority::~PolkitAuthority() = default;

void PolkitAuthority::check(const std::string& sender, uid_t uid, const std::string& action,
                            bool interactive, std::function<void(PolkitAnswer)> done) {
  std::size_t pending = 0;
  for (const auto& [user, checks] : pending_by_user_) pending += checks;
  auto of_user = pending_by_user_.find(uid);
  if (pending >= kMaxPending ||
      (of_user != pending_by_user_.end() && of_user->second >= kMaxPendingPerUser)) {
    done(PolkitAnswer::busy);
    return;
  }
  // polkit resolves a bus name to its process and user through the bus daemon.
  Subject subject{"system-bus-name", {{"name", sdbus::Variant(sender)}}};
  std::string cancellation_id = "portierd-" + std::to_string(++checks_started_);
  auto limit = interactive ? kInteractiveLimit : kNonInteractiveLimit;
  auto settled = [this, uid, cancellation_id] {
    if (--pending_by_user_[uid] == 0) pending_by_user_.erase(uid);
    caller_watches_.erase(cancellation_id);
    due_cancels_.erase(cancellation_id);
  };
  ++pending_by_user_[uid];
  // Set by the watch below; whatever polkit answers after that, nobody waits for it.
  auto caller_left = std::make_shared<bool>(false);
  if (interactive) {
    try {
      caller_watches_[cancellation_id] = connection_.addMatch(
          "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
          "member='NameOwnerChanged',arg0='" +
              sender + "'",
          [this, cancellation_id, sender, caller_left](sdbus::Message& signal) {
            std::string name, old_owner, new_owner;
            signal >> name >> old_owner >> new_owner;
            if (!new_owner.empty()) return;
            *caller_left = true;
            std::fprintf(stderr,
                         "portierd: %s left the bus while authenticating; cancelling its polkit "
                         "check unless polkit ends it within %lld ms\n",
                         name.c_str(), static_cast<long long>(kCancelGrace.count()));
            due_cancels_[cancellation_id] =
                DueCancel{std::chrono::steady_clock::now() + kCancelGrace, sender};
          });
    } catch (const sdbus::Error& error) {
      // The check still ends by the time limit.
      std::fprintf(stderr, "portierd: cannot watch %s while it authenticates: %s\n", sender.c_str(),
                   error.getMessage().c_str());
    }
  }
  auto answered = [settled, done, cancellation_id, sender, caller_left, this](
                      const sdbus::Error* error, AuthorizationResult result) {
    settled();
    if (*caller_left) {
      done(PolkitAnswer::caller_left);
      return;
    }
    if (!error) {
      done(answer_of(result));
      return;
    }
    if (is_name_missing(error->getName())) {
      done(PolkitAnswer::absent);
    } else if (error->getName() == "org.freedesktop.PolicyKit1.Error.Cancelled") {
      // Cancelled here, because the caller left the bus.
      std::fprintf(stderr, "portierd: polkit ended the check of %s\n", sender.c_str());
      done(PolkitAnswer::dismissed);
    } else if (is_timeout(error->getName())) {
      // polkit may still hold an agent's dialog open for it; close it.
      cancel(cancellation_id, sender);
      done(PolkitAnswer::timed_out);
    } else {
      // E.g. "Action org.portier.Firewall1.manage is not registered": the .policy file is
      // missing, which an administrator has to hear of.
      std::fprintf(stderr, "portierd: polkit check failed: %s: %s\n", error->getName().c_str(),
                   error->getMessage().c_str());
      done(PolkitAnswer::failed);
    }
  };
  try {
    proxy_->callMethodAsync("CheckAuthorization")
        .onInterface(kAuthorityInterface)
        .withTimeout(limit)
        .withArguments(subject, action, std::map<std::string, std::string>{},
                       interactive ? kAllowUserInteraction : 0u, cancellation_id)
        .uponReplyInvoke(std::move(answered));
  } catch (const sdbus::Error& error) {
    settled();
    std::fprintf(stderr, "portierd: cannot ask polkit: %s: %s\n", error.getName().c_str(),
                 error.getMessage().c_str());
    done(PolkitAnswer::failed);
  }
}

std::optional<std::chrono::steady_clock::time_point> PolkitAuthority::cancel_due(
    std::chrono::steady_clock::time_point now) {
  std::optional<std::chrono::steady_clock::time_point> next;
  for (auto it = due_cancels_.begin(); it != due_cancels_.end();) {
    if (it->second.at <= now) {
      cancel(it->first, it->second.sender);
      it = due_cancels_.erase(it);
    } else {
      if (!next || it->second.at < *next) next = it->second.at;
      ++it;
    }
  }
  return next;
}

void PolkitAuthority::cancel(const std::string& cancellation_id, const std::string& sender) {
  try {
    proxy_->callMethodAsync("CancelCheckAuthorization")
        .onInterface(kAuthorityInterface)
        .withTimeout(kNonInteractiveLimit)
        .withArguments(cancellation_id)
        .uponReplyInvoke([sender](const sdbus::Error* error) {
          // The check may have ended on its own meanwhile (the caller's agent went with it).
          if (error && error->getMessage().starts_with("No such cancellation_id")) return;
          if (error)
            std::fprintf(stderr, "portierd: polkit did not cancel the check of %s: %s\n",
                         sender.c_str(), error->getMessage().c_str());
          else
            std::fprintf(stderr, "portierd: polkit cancelled the check of %s\n", sender.c_str());
        });
  } catch (const sdbus::Error& error) {
    std::fprintf(stderr, "portierd: cannot cancel the polkit check of %s: %s\n", sender.c_str(),
                 error.getMessage().c_str());
  }
}

}  // namespace portier
