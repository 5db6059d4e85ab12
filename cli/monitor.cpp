// portierctl monitor: portierd's signals and the packets it relays, one line each, until
// SIGINT or SIGTERM.
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

#include "commands.h"
#include "daemon_client.h"
#include "firewall1_api.h"
#include "output.h"

namespace portier::cli {
namespace {

using Facts = std::map<std::string, sdbus::Variant>;

// One event: printed as "HH:MM:SS text" or as a JSON object with "time" and "event".
class Line {
 public:
  Line(bool json, std::string_view event) : json_(json) {
    auto now = std::chrono::system_clock::now();
    std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    std::tm parts{};
    char stamp[40];
    if (json_) {
      gmtime_r(&seconds, &parts);
      auto millis =
          std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
          1000;
      std::size_t length = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &parts);
      std::snprintf(stamp + length, sizeof stamp - length, ".%03dZ", static_cast<int>(millis));
      text_ = "{\"time\":" + json_string(stamp) + ",\"event\":" + json_string(event);
    } else {
      localtime_r(&seconds, &parts);
      std::strftime(stamp, sizeof stamp, "%H:%M:%S", &parts);
      text_ = stamp;
    }
  }
  Line& field(std::string_view key, std::string_view value) {
    if (json_) text_ += "," + json_string(key) + ":" + json_string(value);
    return *this;
  }
  Line& field(std::string_view key, std::uint64_t value) {
    if (json_) text_ += "," + json_string(key) + ":" + std::to_string(value);
    return *this;
  }
  Line& field(std::string_view key, bool value) {
    if (json_) text_ += "," + json_string(key) + ":" + (value ? "true" : "false");
    return *this;
  }
  /// The human-readable text (ignored with --json).
  Line& says(std::string_view words) {
    if (!json_) (text_ += ' ') += words;
    return *this;
  }
  // Lines go out at once: monitor output is mostly read through a pipe.
  void print() {
    if (json_) text_ += '}';
    std::printf("%s\n", text_.c_str());
    std::fflush(stdout);
  }

 private:
  bool json_;
  std::string text_;
};

template <typename T>
T fact(const Facts& facts, const std::string& key, T fallback = {}) {
  auto it = facts.find(key);
  if (it == facts.end() || !it->second.containsValueOfType<T>()) return fallback;
  return it->second.get<T>();
}

std::string endpoint(const Facts& packet, const char* address, const char* port) {
  std::string text = fact<std::string>(packet, address, "?");
  auto number = fact<std::uint16_t>(packet, port);
  if (number == 0) return text;
  if (fact<std::string>(packet, bus_key::packet::kFamily) == "ipv6") text = "[" + text + "]";
  return text + ":" + std::to_string(number);
}

// "dropped tcp 10.200.1.2:40000 -> 10.200.1.1:139 in veth0 by netbios-in"
std::string describe_packet(const Facts& packet) {
  namespace key = bus_key::packet;
  std::string protocol = fact<std::string>(packet, key::kProtocol);
  std::string text = fact<std::string>(packet, key::kVerdict, "logged") + " " +
                     (protocol.empty() ? "packet" : protocol) + " " +
                     endpoint(packet, key::kSource, key::kSport) + " -> " +
                     endpoint(packet, key::kDestination, key::kDport);
  if (auto it = packet.find(key::kIcmpType);
      it != packet.end() && it->second.containsValueOfType<std::uint8_t>())
    text += " type " + std::to_string(it->second.get<std::uint8_t>());
  if (auto in = fact<std::string>(packet, key::kIn); !in.empty()) text += " in " + in;
  if (auto out = fact<std::string>(packet, key::kOut); !out.empty()) text += " out " + out;
  std::string rule = fact<std::string>(packet, key::kRule),
              chain = fact<std::string>(packet, key::kChain);
  if (!rule.empty())
    text += " by " + rule;
  else if (!chain.empty())
    text += " by " + chain + " default";
  else
    text += " by \"" + fact<std::string>(packet, key::kPrefix) + "\"";
  return text;
}

class Monitor final : public sdbus::ProxyInterfaces<org::portier::Firewall1_proxy> {
 public:
  Monitor(sdbus::IConnection& bus, bool json)
      : ProxyInterfaces(bus, kBusName, kObjectPath), json_(json) {
    registerProxy();
  }
  ~Monitor() { unregisterProxy(); }

 private:
  void onApplied(const uint64_t& generation, const std::string& reason) override {
    Line(json_, "applied")
        .field("generation", generation)
        .field("reason", reason)
        .says("applied generation " + std::to_string(generation) + " (" + reason + ")")
        .print();
  }
  void onRuleChanged(const std::string& name, const bool& enabled) override {
    Line(json_, "rule-changed")
        .field("rule", name)
        .field("enabled", enabled)
        .says("rule " + name + (enabled ? " enabled" : " disabled"))
        .print();
  }
  void onConfirmPending(const uint32_t& seconds) override {
    Line(json_, "confirm-pending")
        .field("seconds", std::uint64_t{seconds})
        .says("confirm within " + std::to_string(seconds) + " s, or portierd rolls back")
        .print();
  }
  void onRolledBack(const std::string& reason) override {
    Line(json_, "rolled-back").field("reason", reason).says("rolled back: " + reason).print();
  }
  void onDriftRepaired(const std::string& what) override {
    Line(json_, "drift-repaired").field("what", what).says("drift repaired: " + what).print();
  }
  void onOwnerChanged(const std::string& kind, const std::string& name, const std::string& owner,
                      const bool& running, const std::string& cgroup,
                      const uint64_t& cgroup_id) override {
    Line(json_, "owner-changed")
        .field("kind", kind)
        .field("name", name)
        .field("owner", owner)
        .field("running", running)
        .field("cgroup", cgroup)
        .field("cgroup_id", cgroup_id)
        .says(kind + " " + name + ": " + owner +
              (running ? " started (cgroup id " + std::to_string(cgroup_id) + ")"
                       : " stopped: its ports are served by nobody"))
        .print();
  }
  void onPacketLogged(const Facts& packet) override {
    if (packet.count(bus_key::packet::kSuppressed) > 0) {
      auto count = fact<std::uint64_t>(packet, bus_key::packet::kSuppressed);
      Line(json_, "suppressed")
          .field("count", count)
          .says(std::to_string(count) + " more logged packets suppressed")
          .print();
      return;
    }
    Line line(json_, "packet");
    // Every key as it came, so fields a newer portierd adds reach scripts too.
    for (const auto& [key, value] : packet) {
      if (value.containsValueOfType<std::string>())
        line.field(key, value.get<std::string>());
      else if (value.containsValueOfType<std::uint8_t>())
        line.field(key, std::uint64_t{value.get<std::uint8_t>()});
      else if (value.containsValueOfType<std::uint16_t>())
        line.field(key, std::uint64_t{value.get<std::uint16_t>()});
      else if (value.containsValueOfType<std::uint32_t>())
        line.field(key, std::uint64_t{value.get<std::uint32_t>()});
      else if (value.containsValueOfType<std::uint64_t>())
        line.field(key, value.get<std::uint64_t>());
      else if (value.containsValueOfType<bool>())
        line.field(key, value.get<bool>());
    }
    line.says(describe_packet(packet)).print();
  }

  bool json_;
};

// SIGINT and SIGTERM become readable on a descriptor, so the loop ends between messages.
int signal_fd() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  return signalfd(-1, &signals, SFD_CLOEXEC);
}

int follow(sdbus::IConnection& bus, int stop_fd) {
  for (;;) {
    while (bus.processPendingRequest()) {
    }
    sdbus::IConnection::PollData poll_data = bus.getEventLoopPollData();
    int timeout_ms = -1;
    if (auto relative = poll_data.getRelativeTimeout())
      timeout_ms = static_cast<int>((relative->count() + 999) / 1000);
    pollfd fds[2] = {{poll_data.fd, poll_data.events, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(fds, 2, timeout_ms) < 0 && errno != EINTR) {
      std::fprintf(stderr, "portierctl monitor: poll: %s\n", std::strerror(errno));
      return kFailure;
    }
    if (fds[1].revents & POLLIN) return kOk;
  }
}

}  // namespace

int monitor(Args args) {
  bool json = false;
  for (std::string_view arg : args) {
    if (arg == "--json")
      json = true;
    else
      return usage_error("monitor", "unknown argument '" + std::string(arg) + "'");
  }
  int stop_fd = signal_fd();
  if (stop_fd < 0) {
    std::fprintf(stderr, "portierctl monitor: signalfd: %s\n", std::strerror(errno));
    return kFailure;
  }
  try {
    auto bus = sdbus::createSystemBusConnection();
    Monitor monitor(*bus, json);
    // The signal matches are in place; now make sure someone will send them, and say so
    // (scripts wait for this line before they change anything).
    Facts status = monitor.GetStatus();
    auto generation = fact<std::uint64_t>(status, bus_key::status::kGeneration);
    std::string mode = fact<std::string>(status, bus_key::status::kMode),
                policy = fact<std::string>(status, bus_key::status::kPolicyPath);
    Line(json, "monitoring")
        .field("generation", generation)
        .field("mode", mode)
        .field("policy_path", policy)
        .says("monitoring portierd: generation " + std::to_string(generation) + ", mode " + mode +
              ", " + policy)
        .print();
    int exit_code = follow(*bus, stop_fd);
    ::close(stop_fd);
    return exit_code;
  } catch (const sdbus::Error& error) {
    ::close(stop_fd);
    return report_bus_error(error);
  }
}

}  // namespace portier::cli
