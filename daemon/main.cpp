// portierd: loads the policy into the kernel, then serves org.portier.Firewall1.
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <memory>
#include <string_view>

#include "cgroups.h"
#include "dbus_service.h"
#include "firewall.h"
#include "netlink_kernel.h"
#include "packet_log.h"

namespace {

constexpr const char* kUsage =
    "usage: portierd [--policy FILE] [--state-dir DIR] [--no-table-owner]\n"
    "\n"
    "Loads the nftables ruleset for FILE (default /etc/portier/policy.toml) into the\n"
    "kernel as table inet portier, then serves org.portier.Firewall1 on the system bus.\n"
    "State (the last policy the kernel accepted) goes to DIR (default /var/lib/portier).\n"
    "SIGHUP reloads the policy; SIGTERM and SIGINT exit and leave the ruleset loaded.\n"
    "\n"
    "  --no-table-owner  load the table without the owner and persist flags: other\n"
    "                    processes (nft) may then change it; portierd restores its own\n"
    "                    table whenever they do, and the table stays when it exits\n";

struct Options {
  std::string policy = "/etc/portier/policy.toml";
  std::string state_dir = "/var/lib/portier";
  bool table_owner = true;
};

// Returns false (after printing why) when the command line is not usable.
bool parse_options(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "portierd: %s needs a value\n", argv[i]);
        return false;
      }
      out = argv[++i];
      return true;
    };
    if (arg == "--policy") {
      if (!value(options.policy)) return false;
    } else if (arg == "--state-dir") {
      if (!value(options.state_dir)) return false;
    } else if (arg == "--no-table-owner") {
      options.table_owner = false;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--version") {
      std::printf("portierd %s\n", PORTIER_VERSION);
      std::exit(0);
    } else {
      std::fprintf(stderr, "portierd: unknown argument '%s'\n%s", argv[i], kUsage);
      return false;
    }
  }
  return true;
}

// Signals arrive as readable events on a descriptor, so the one poll loop handles them
// between bus messages instead of interrupting one.
int block_signals_into_fd() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  return signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
}

void notify_status(const portier::Firewall& firewall, bool ready) {
  portier::FirewallStatus status = firewall.status();
  std::string message = std::string(ready ? "READY=1\n" : "") + "STATUS=" +
                        std::to_string(status.rules_enabled) + " of " + std::to_string(status.rules) +
                        " rules active from " + status.policy_path + " (" + status.loaded_from +
                        ", mode " + std::string(portier::to_string(status.mode)) + ", generation " +
                        std::to_string(status.generation) + ")";
  sd_notify(0, message.c_str());
}

// Arms `timer_fd` for the firewall's next deadline (timed rules, a pending confirm).
void arm_timer(int timer_fd, const portier::Firewall& firewall) {
  itimerspec spec{};
  if (auto deadline = firewall.next_deadline()) {
    auto since_epoch = deadline->time_since_epoch();
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    spec.it_value.tv_sec = std::max<time_t>(1, static_cast<time_t>(seconds.count()));
    spec.it_value.tv_nsec = static_cast<long>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count());
  }
  timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &spec, nullptr);
}

// Binds follow their units: what the loaded ruleset's owners depend on is watched, and
// when cgroups come or go their sets are changed at once. No polling: inotify wakes us.
class CgroupFollower {
 public:
  CgroupFollower(portier::CgroupWatch& watch, portier::Firewall& firewall)
      : watch_(watch), firewall_(firewall) {}
  int fd() const { return watch_.fd(); }
  /// After anything that may have loaded a new ruleset (with other owners).
  void after_change() {
    if (watched_generation_ == firewall_.generation()) return;
    watched_generation_ = firewall_.generation();
    follow();
  }
  /// When fd() is readable.
  void on_readable() {
    if (watch_.read_changes()) follow();
  }

 private:
  void follow() {
    try {
      // Watch first, then look: a cgroup made in between is seen by the look, one made
      // after it by the watch.
      watch_.watch(firewall_.cgroups_to_watch());
      firewall_.follow_cgroups();
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portierd: following bound units: %s\n", failure.what());
    }
  }

  portier::CgroupWatch& watch_;
  portier::Firewall& firewall_;
  std::optional<std::uint64_t> watched_generation_;
};

int serve(sdbus::IConnection& bus, portier::FirewallService& service, portier::Firewall& firewall,
          portier::KernelChanges& changes, int signal_fd, CgroupFollower& cgroups) {
  int timer_fd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
  // systemd's watchdog wants a sign of life at half its interval at the latest.
  std::uint64_t watchdog_usec = 0;
  bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  auto last_ping = std::chrono::steady_clock::now();
  // Packets the policy's log statements send to its nflog group, relayed as PacketLogged.
  // Rebound whenever the kernel has a new ruleset, which may name another group.
  std::optional<portier::PacketLog> packet_log;
  try {
    packet_log.emplace();
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "portierd: logged packets will not be relayed: %s\n", failure.what());
  }
  std::optional<std::uint64_t> log_bound_generation;
  // Someone else changed our table (possible when it has no owner, or while it was an
  // orphan): put ours back at once. The table's name never changes; taking it once spares
  // a look at the firewall's state on every turn of the loop.
  const std::string table = firewall.status().table;
  auto repair_drift = [&] {
    try {
      if (!changes.changed_by_others(table)) return;
      auto started = std::chrono::steady_clock::now();
      firewall.repair_drift("nftables change notification");
      auto took = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - started);
      std::fprintf(stderr, "portierd: table inet %s restored in %.1f ms\n", table.c_str(),
                   static_cast<double>(took.count()) / 1000.0);
      service.drift_repaired("table inet " + table + " changed by another process");
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portierd: drift repair failed: %s\n", failure.what());
    }
  };
  for (;;) {
    // Handle everything sd-bus already has queued before sleeping; their changes then go
    // to disk in one write (flush_state below), and their replies once it is there.
    while (bus.processPendingRequest()) {
    }
    // A commit by others while one of ours ran sends us no notification (we are out of the
    // event group then, see NetlinkChanges); it is only remembered. Ask before sleeping,
    // or it would wait for the next event.
    repair_drift();
    cgroups.after_change();
    firewall.flush_state();
    firewall.release_memory();
    arm_timer(timer_fd, firewall);
    if (packet_log && log_bound_generation != firewall.generation()) {
      log_bound_generation = firewall.generation();
      auto before = packet_log->group();
      try {
        packet_log->bind(firewall.log_group());
      } catch (const std::exception& failure) {
        std::fprintf(stderr, "portierd: logged packets will not be relayed: %s\n", failure.what());
      }
      if (packet_log->group() && packet_log->group() != before)
        std::fprintf(stderr, "portierd: relaying packets logged to nflog group %u\n", *packet_log->group());
    }
    auto packet_summary_due = service.flush_packet_log();
    sdbus::IConnection::PollData poll_data = bus.getEventLoopPollData();
    int timeout_ms = -1;
    if (auto relative = poll_data.getRelativeTimeout())
      timeout_ms = static_cast<int>((relative->count() + 999) / 1000);
    if (watchdog) {
      int ping_ms = static_cast<int>(watchdog_usec / 2000);
      timeout_ms = timeout_ms < 0 ? ping_ms : std::min(timeout_ms, ping_ms);
    }
    if (packet_summary_due) {
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(*packet_summary_due - std::chrono::steady_clock::now());
      int summary_ms = static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, wait.count()));
      timeout_ms = timeout_ms < 0 ? summary_ms : std::min(timeout_ms, summary_ms);
    }
    // poll() skips entries with a negative fd.
    pollfd fds[7] = {{poll_data.fd, poll_data.events, 0},
                     {signal_fd, POLLIN, 0},
                     {timer_fd, POLLIN, 0},
                     {changes.fd(), POLLIN, 0},
                     {packet_log ? packet_log->fd() : -1, POLLIN, 0},
                     {cgroups.fd(), POLLIN, 0},
                     {firewall.state_fd(), POLLIN, 0}};
    if (::poll(fds, 7, timeout_ms) < 0 && errno != EINTR) {
      std::fprintf(stderr, "portierd: poll: %s\n", std::strerror(errno));
      return 1;
    }
    if (watchdog && std::chrono::steady_clock::now() - last_ping >=
                        std::chrono::microseconds(watchdog_usec / 2)) {
      sd_notify(0, "WATCHDOG=1");
      last_ping = std::chrono::steady_clock::now();
    }
    if (fds[2].revents & POLLIN) {
      std::uint64_t expirations = 0;
      // Drains the timer; the count is not needed. A variable, not a (void) cast: with
      // _FORTIFY_SOURCE, glibc marks read() warn_unused_result, which GCC does not let a cast
      // silence.
      [[maybe_unused]] const ssize_t drained = ::read(timer_fd, &expirations, sizeof expirations);
      try {
        firewall.on_timer();
      } catch (const std::exception& failure) {
        std::fprintf(stderr, "portierd: timer: %s\n", failure.what());
      }
      notify_status(firewall, false);
    }
    if (fds[3].fd >= 0 && (fds[3].revents & POLLIN)) repair_drift();
    if (fds[5].revents & POLLIN) cgroups.on_readable();
    // The state writer finished: the calls whose changes it wrote get their replies.
    if (fds[6].fd >= 0 && (fds[6].revents & POLLIN)) service.answer_saved();
    // A full receive buffer shows as POLLERR; the read reports (and clears) it.
    if (fds[4].revents & (POLLIN | POLLERR)) {
      try {
        for (const portier::LoggedPacket& packet : packet_log->read_pending()) service.emit_packet_logged(packet);
        if (std::uint64_t overflows = packet_log->take_overflows())
          std::fprintf(stderr, "portierd: the kernel dropped logged packets (receive buffer full, %llu times)\n",
                       static_cast<unsigned long long>(overflows));
      } catch (const std::exception& failure) {
        std::fprintf(stderr, "portierd: reading logged packets: %s\n", failure.what());
      }
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info{};
      while (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo == SIGHUP) {
          sd_notify(0, "RELOADING=1");
          service.reload_logged();
          notify_status(firewall, true);
        } else {
          std::fprintf(stderr, "portierd: %s: exiting, ruleset stays loaded\n",
                       strsignal(static_cast<int>(info.ssi_signo)));
          sd_notify(0, "STOPPING=1");
          // Calls whose changes are being written still get their answers.
          firewall.wait_for_state();
          service.answer_saved();
          ::close(timer_fd);
          return 0;
        }
      }
    }
  }
}

int run(const Options& options) {
  int signal_fd = block_signals_into_fd();
  if (signal_fd < 0) {
    std::fprintf(stderr, "portierd: signalfd: %s\n", std::strerror(errno));
    return 1;
  }
  std::filesystem::create_directories(options.state_dir);

  portier::NetlinkKernel kernel;
  portier::FirewallOptions firewall_options;
  firewall_options.policy_path = options.policy;
  firewall_options.state_dir = options.state_dir;
  // Owned by portierd's netlink socket, nobody else can change or delete the table while
  // it runs; persistent, it stays in force when portierd stops or crashes, and the next
  // start takes it over (docs/nftables-owner.md). Without the flags (by choice, or on
  // kernels before 5.12) others can change it, and the event loop repairs their changes.
  firewall_options.compile.owner = options.table_owner;
  const std::string cgroup2_root = portier::find_cgroup2_root();
  if (cgroup2_root.empty())
    std::fprintf(stderr, "portierd: cgroup v2 is not mounted: ports bound to a unit or cgroup are served by nobody\n");
  portier::LiveCgroupTree cgroup_tree(cgroup2_root);
  portier::CgroupWatch cgroup_watch(cgroup2_root);
  firewall_options.cgroups = &cgroup_tree;
  portier::Firewall firewall(kernel, std::move(firewall_options), portier::SystemTables::load());
  CgroupFollower cgroups(cgroup_watch, firewall);
  // Whatever happens, a ruleset is in the kernel before anything else: the policy, the
  // last good one, or the built-in fail-closed one.
  std::string problems = firewall.start();
  if (!problems.empty()) std::fprintf(stderr, "%s", problems.c_str());
  std::fprintf(stderr, "portierd: loaded %s into table inet portier (%s, generation %llu)\n",
               options.policy.c_str(), firewall.status().loaded_from.c_str(),
               static_cast<unsigned long long>(firewall.generation()));
  for (const portier::OwnerStatus& owner : firewall.status().owners)
    if (!owner.cgroup)
      std::fprintf(stderr, "portierd: %s %s: %s is not running: nobody may serve its ports until it runs\n",
                   owner.kind.c_str(), owner.name.c_str(), owner.owner.c_str());
  cgroups.after_change();

  // The firewall is up before the bus is touched: it must not wait for D-Bus. Early in
  // boot the bus may not be there yet; systemd hears READY=1 anyway, and the name is
  // taken as soon as the bus answers.
  std::unique_ptr<sdbus::IConnection> bus;
  for (bool told = false; !bus;) {
    try {
      bus = sdbus::createSystemBusConnection(portier::kBusName);
    } catch (const sdbus::Error& failure) {
      if (!told) {
        std::fprintf(stderr, "portierd: system bus not available (%s); the ruleset is loaded, retrying\n",
                     failure.getMessage().c_str());
        notify_status(firewall, true);
        told = true;
      }
      // Units start while the bus is not there yet (early boot): follow them meanwhile.
      pollfd waiting[2] = {{signal_fd, POLLIN, 0}, {cgroups.fd(), POLLIN, 0}};
      if (::poll(waiting, 2, 1000) > 0) {
        if (waiting[1].revents & POLLIN) cgroups.on_readable();
        signalfd_siginfo info{};
        if ((waiting[0].revents & POLLIN) &&
            ::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info) &&
            info.ssi_signo != SIGHUP) {
          std::fprintf(stderr, "portierd: exiting before the bus came, ruleset stays loaded\n");
          return 0;
        }
      }
    }
  }
  portier::FirewallService service(*bus, firewall);
  notify_status(firewall, true);
  std::fprintf(stderr, "portierd: serving %s on the system bus\n", portier::kBusName);
  portier::NetlinkChanges changes(kernel);
  int status = serve(*bus, service, firewall, changes, signal_fd, cgroups);
  ::close(signal_fd);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_options(argc, argv, options)) return 2;
  try {
    return run(options);
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "portierd: %s\n", failure.what());
    return 1;
  }
}
