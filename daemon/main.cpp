// portierd: loads the policy into the kernel, then serves org.portier.Firewall1 from one
// sd-event loop.
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "cgroups.h"
#include "dbus_service.h"
#include "firewall.h"
#include "host_interfaces.h"
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

// sd-event takes the signals through a signalfd of its own, which sees only blocked
// signals; blocked, they are handled between bus messages instead of interrupting one.
constexpr int kSignals[] = {SIGTERM, SIGINT, SIGHUP};

void block_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int signal : kSignals) sigaddset(&signals, signal);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
}

void notify_status(const portier::Firewall& firewall, bool ready) {
  portier::FirewallStatus status = firewall.status();
  std::string message =
      std::string(ready ? "READY=1\n" : "") + "STATUS=" + std::to_string(status.rules_enabled) +
      " of " + std::to_string(status.rules) + " rules active from " + status.policy_path + " (" +
      status.loaded_from + ", mode " + std::string(portier::to_string(status.mode)) +
      ", generation " + std::to_string(status.generation) + ")";
  sd_notify(0, message.c_str());
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

struct EventUnref {
  void operator()(sd_event* loop) const { sd_event_unref(loop); }
};
struct SourceUnref {
  void operator()(sd_event_source* source) const { sd_event_source_disable_unref(source); }
};
using EventLoop = std::unique_ptr<sd_event, EventUnref>;
using Source = std::unique_ptr<sd_event_source, SourceUnref>;

void check(int result, const char* what) {
  if (result < 0) throw std::system_error(-result, std::generic_category(), what);
}

// How long portierd keeps the heap a whole load freed before it gives it back (prepare()).
constexpr std::uint64_t kHeapDecayUsec = 10'000'000;

std::uint64_t usec_of(std::chrono::nanoseconds since_epoch) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count());
}

// The daemon's one event loop (sd-event): a source for each descriptor, timer and signal.
//   - the bus connection's fd and its timeout: sdbus-c++ 1.2 cannot attach itself to an
//     sd_event, so its poll data are copied into the two sources before every sleep;
//   - SIGTERM, SIGINT, SIGHUP;
//   - the firewall's next deadline (timed rules, a pending confirm), CLOCK_REALTIME;
//   - nftables change notifications (KernelChanges, for drift repair), the nflog socket
//     (relayed packets),
//     inotify on the cgroups the owners depend on, the state writer's eventfd;
//   - the end of the second that relays logged packets counted but not sent.
// What used to run at the top of every turn of the poll() loop (answering queued calls,
// writing the state, re-arming the timers) runs before every sleep, as the bus source's
// prepare callback. Before the system bus is there, only the signals, the cgroups and a
// retry timer are served.
class Server {
 public:
  Server(portier::Firewall& firewall, portier::NetlinkKernel& kernel, CgroupFollower& cgroups)
      : firewall_(firewall), kernel_(kernel), cgroups_(cgroups), table_(firewall.status().table) {
    sd_event* loop = nullptr;
    check(sd_event_new(&loop), "sd_event_new");
    loop_.reset(loop);
  }

  // Returns the exit status.
  int run() {
    for (std::size_t i = 0; i < std::size(kSignals); ++i) {
      sd_event_source* source = nullptr;
      check(sd_event_add_signal(loop_.get(), &source, kSignals[i], &Server::on_signal, this),
            "sd_event_add_signal");
      signals_[i].reset(source);
    }
    if (cgroups_.fd() >= 0) cgroups_source_ = add_io(cgroups_.fd(), &Server::on_cgroups);
    // The firewall is up before the bus is touched: it must not wait for D-Bus. Early in
    // boot the bus may not be there yet; systemd hears READY=1 anyway, and the name is
    // taken as soon as the bus answers.
    if (!connect()) {
      sd_event_source* source = nullptr;
      check(sd_event_add_time_relative(loop_.get(), &source, CLOCK_MONOTONIC, 1000000, 1000,
                                       &Server::on_retry, this),
            "sd_event_add_time_relative");
      retry_.reset(source);
    }
    const int status = sd_event_loop(loop_.get());
    if (failure_) std::rethrow_exception(failure_);
    if (status < 0) throw std::system_error(-status, std::generic_category(), "sd_event_loop");
    return status;
  }

 private:
  // Tries to connect to the system bus, and when it can, starts serving on it.
  bool connect() {
    try {
      bus_ = sdbus::createSystemBusConnection(portier::kBusName);
    } catch (const sdbus::Error& failure) {
      if (!told_) {
        std::fprintf(stderr,
                     "portierd: system bus not available (%s); the ruleset is loaded, retrying\n",
                     failure.getMessage().c_str());
        notify_status(firewall_, true);
        told_ = true;
      }
      return false;
    }
    serve();
    return true;
  }

  void serve() {
    service_.emplace(*bus_, firewall_);
    notify_status(firewall_, true);
    std::fprintf(stderr, "portierd: serving %s on the system bus\n", portier::kBusName);
    changes_.emplace(kernel_);
    // -1 when the kernel has no change notifications: then there is nothing to wait on.
    if (changes_->fd() >= 0) drift_source_ = add_io(changes_->fd(), &Server::on_drift);
    // systemd's watchdog wants a sign of life at half its interval at the latest; sd-event
    // sends it (WATCHDOG_USEC) while the loop runs.
    check(sd_event_set_watchdog(loop_.get(), 1), "sd_event_set_watchdog");
    // Packets the policy's log statements send to its nflog group, relayed as PacketLogged.
    // Rebound whenever the kernel has a new ruleset, which may name another group.
    try {
      packet_log_.emplace();
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portierd: logged packets will not be relayed: %s\n", failure.what());
    }
    if (packet_log_) packet_log_source_ = add_io(packet_log_->fd(), &Server::on_packet_log);

    const sdbus::IConnection::PollData poll_data = bus_->getEventLoopPollData();
    bus_source_ =
        add_io(poll_data.fd, &Server::on_bus, static_cast<std::uint32_t>(poll_data.events));
    check(sd_event_source_set_prepare(bus_source_.get(), &Server::before_sleep),
          "sd_event_source_set_prepare");
    bus_timeout_ = add_timer(CLOCK_MONOTONIC, &Server::on_bus_timeout);
    deadline_ = add_timer(CLOCK_REALTIME, &Server::on_deadline);
    packet_summary_ = add_timer(CLOCK_MONOTONIC, &Server::wake_only);
    polkit_cancel_ = add_timer(CLOCK_MONOTONIC, &Server::wake_only);
    heap_decay_ = add_timer(CLOCK_MONOTONIC, &Server::on_heap_decay);
  }

  // Runs before every sleep of the loop.
  void prepare() {
    // Handle everything sd-bus already has queued before sleeping; their changes then go
    // to disk in one write (flush_state below), and their replies once it is there.
    process_bus();
    // A commit by others while one of ours ran sends us no notification (we are out of the
    // event group then, see NetlinkChanges); it is only remembered. Ask before sleeping,
    // or it would wait for the next event.
    repair_drift();
    cgroups_.after_change();
    firewall_.flush_state();
    // Freed heap goes back once no whole load came for kHeapDecayUsec (as jemalloc's decay).
    // Given back after every load, the next reload faulted all of it in again: with the
    // trim, a 10,000-rule reload took portierd 320 ms of CPU, without it 170 ms.
    if (firewall_.whole_loads() != trim_armed_for_) {
      trim_armed_for_ = firewall_.whole_loads();
      std::uint64_t now = 0;
      check(sd_event_now(loop_.get(), CLOCK_MONOTONIC, &now), "sd_event_now");
      set_timer(heap_decay_, now + kHeapDecayUsec);
    }
    follow_fd(state_source_, firewall_.state_fd(), &Server::on_state_written);
    if (auto deadline = firewall_.next_deadline())
      set_timer(deadline_, std::max<std::uint64_t>(1, usec_of(deadline->time_since_epoch())));
    else
      check(sd_event_source_set_enabled(deadline_.get(), SD_EVENT_OFF),
            "sd_event_source_set_enabled");
    rebind_packet_log();
    if (auto due = service_->flush_packet_log())
      set_timer(packet_summary_, usec_of(due->time_since_epoch()));
    else
      check(sd_event_source_set_enabled(packet_summary_.get(), SD_EVENT_OFF),
            "sd_event_source_set_enabled");
    if (auto due = service_->cancel_due_polkit_checks())
      set_timer(polkit_cancel_, usec_of(due->time_since_epoch()));
    else
      check(sd_event_source_set_enabled(polkit_cancel_.get(), SD_EVENT_OFF),
            "sd_event_source_set_enabled");
    const sdbus::IConnection::PollData poll_data = bus_->getEventLoopPollData();
    check(sd_event_source_set_io_events(bus_source_.get(),
                                        static_cast<std::uint32_t>(poll_data.events)),
          "sd_event_source_set_io_events");
    // UINT64_MAX: sd-bus waits for nothing.
    if (poll_data.timeout_usec == UINT64_MAX)
      check(sd_event_source_set_enabled(bus_timeout_.get(), SD_EVENT_OFF),
            "sd_event_source_set_enabled");
    else
      set_timer(bus_timeout_, poll_data.timeout_usec);
  }

  void process_bus() {
    while (bus_->processPendingRequest()) {
    }
  }

  void rebind_packet_log() {
    if (!packet_log_ || log_bound_generation_ == firewall_.generation()) return;
    log_bound_generation_ = firewall_.generation();
    auto before = packet_log_->group();
    try {
      packet_log_->bind(firewall_.log_group());
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portierd: logged packets will not be relayed: %s\n", failure.what());
    }
    if (packet_log_->group() && packet_log_->group() != before)
      std::fprintf(stderr, "portierd: relaying packets logged to nflog group %u\n",
                   *packet_log_->group());
  }

  // Someone else changed our table (possible when it has no owner, or while it was an
  // orphan): put ours back at once. The time logged runs from reading the notifications
  // to the table being back.
  void repair_drift() {
    try {
      auto started = std::chrono::steady_clock::now();
      if (!firewall_.repair_drift_if_changed(*changes_)) return;
      auto took = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - started);
      std::fprintf(stderr, "portierd: table inet %s restored in %.1f ms\n", table_.c_str(),
                   static_cast<double>(took.count()) / 1000.0);
      service_->drift_repaired("table inet " + table_ + " changed by another process");
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portierd: drift repair failed: %s\n", failure.what());
    }
  }

  void signalled(const signalfd_siginfo& info) {
    if (!service_) {
      // Before the bus came, a reload has nobody to answer to: only leaving counts.
      if (info.ssi_signo == SIGHUP) return;
      std::fprintf(stderr, "portierd: exiting before the bus came, ruleset stays loaded\n");
      sd_event_exit(loop_.get(), 0);
      return;
    }
    if (info.ssi_signo == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      service_->reload_logged();
      notify_status(firewall_, true);
      return;
    }
    std::fprintf(stderr, "portierd: %s: exiting, ruleset stays loaded\n",
                 strsignal(static_cast<int>(info.ssi_signo)));
    sd_notify(0, "STOPPING=1");
    // Calls whose changes are being written still get their answers.
    firewall_.wait_for_state();
    service_->answer_saved();
    sd_event_exit(loop_.get(), 0);
  }

  void deadline_passed() {
    try {
      firewall_.on_timer();
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portierd: timer: %s\n", failure.what());
    }
    notify_status(firewall_, false);
  }

  void packets_logged() {
    try {
      for (const portier::LoggedPacket& packet : packet_log_->read_pending())
        service_->emit_packet_logged(packet);
      if (std::uint64_t overflows = packet_log_->take_overflows())
        std::fprintf(
            stderr,
            "portierd: the kernel dropped logged packets (receive buffer full, %llu times)\n",
            static_cast<unsigned long long>(overflows));
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portierd: reading logged packets: %s\n", failure.what());
    }
  }

  // Sources. Each callback runs one member; what escapes it ends the loop, and run()
  // throws it as the poll() loop let it escape serve().
  using Member = void (Server::*)();
  template <Member member>
  static int call(void* self) {
    auto* server = static_cast<Server*>(self);
    try {
      (server->*member)();
    } catch (...) {
      server->failure_ = std::current_exception();
      sd_event_exit(server->loop_.get(), 1);
    }
    return 0;
  }
  static int before_sleep(sd_event_source*, void* self) { return call<&Server::prepare>(self); }
  static int on_bus(sd_event_source*, int, std::uint32_t, void* self) {
    return call<&Server::process_bus>(self);
  }
  // The timeout is sd-bus's to handle; processing the connection does it.
  static int on_bus_timeout(sd_event_source*, std::uint64_t, void* self) {
    return call<&Server::process_bus>(self);
  }
  static int on_deadline(sd_event_source*, std::uint64_t, void* self) {
    return call<&Server::deadline_passed>(self);
  }
  // The packet summary and the polkit cancellations go out in prepare() (flush_packet_log,
  // cancel_due_polkit_checks), which also re-arms their timers: waking up is all they do.
  static int wake_only(sd_event_source*, std::uint64_t, void*) { return 0; }
  static int on_heap_decay(sd_event_source*, std::uint64_t, void* self) {
    return call<&Server::release_memory>(self);
  }
  void release_memory() { firewall_.release_memory(); }
  static int on_drift(sd_event_source*, int, std::uint32_t, void* self) {
    return call<&Server::repair_drift>(self);
  }
  static int on_cgroups(sd_event_source*, int, std::uint32_t, void* self) {
    return call<&Server::cgroups_changed>(self);
  }
  // The state writer finished: the calls whose changes it wrote get their replies.
  static int on_state_written(sd_event_source*, int, std::uint32_t, void* self) {
    return call<&Server::state_written>(self);
  }
  // A full receive buffer shows as EPOLLERR; the read reports (and clears) it.
  static int on_packet_log(sd_event_source*, int, std::uint32_t, void* self) {
    return call<&Server::packets_logged>(self);
  }
  static int on_signal(sd_event_source*, const signalfd_siginfo* info, void* self) {
    auto* server = static_cast<Server*>(self);
    server->signal_ = *info;
    return call<&Server::signal_received>(self);
  }
  static int on_retry(sd_event_source* source, std::uint64_t now, void* self) {
    auto* server = static_cast<Server*>(self);
    try {
      if (server->connect()) {
        server->retry_.reset();
        return 0;
      }
      check(sd_event_source_set_time(source, now + 1000000), "sd_event_source_set_time");
      check(sd_event_source_set_enabled(source, SD_EVENT_ONESHOT), "sd_event_source_set_enabled");
    } catch (...) {
      server->failure_ = std::current_exception();
      sd_event_exit(server->loop_.get(), 1);
    }
    return 0;
  }
  void cgroups_changed() { cgroups_.on_readable(); }
  void state_written() { service_->answer_saved(); }
  void signal_received() { signalled(signal_); }

  Source add_io(int fd, sd_event_io_handler_t handler, std::uint32_t events = EPOLLIN) {
    sd_event_source* source = nullptr;
    check(sd_event_add_io(loop_.get(), &source, fd, events, handler, this), "sd_event_add_io");
    return Source(source);
  }

  // A timer that is off until set_timer() arms it. Exact to the microsecond: a rule's end
  // or a confirm deadline is shown to the user, and sd-event's default is 250 ms late.
  Source add_timer(clockid_t clock, sd_event_time_handler_t handler) {
    sd_event_source* source = nullptr;
    check(sd_event_add_time(loop_.get(), &source, clock, UINT64_MAX, 1, handler, this),
          "sd_event_add_time");
    check(sd_event_source_set_enabled(source, SD_EVENT_OFF), "sd_event_source_set_enabled");
    return Source(source);
  }

  static void set_timer(const Source& timer, std::uint64_t usec) {
    check(sd_event_source_set_time(timer.get(), usec), "sd_event_source_set_time");
    check(sd_event_source_set_enabled(timer.get(), SD_EVENT_ONESHOT),
          "sd_event_source_set_enabled");
  }

  // The state writer's eventfd comes with the first write: it gets its source once it
  // exists.
  void follow_fd(Source& source, int fd, sd_event_io_handler_t handler) {
    if (source && sd_event_source_get_io_fd(source.get()) == fd) return;
    source.reset();
    if (fd >= 0) source = add_io(fd, handler);
  }

  portier::Firewall& firewall_;
  portier::NetlinkKernel& kernel_;
  CgroupFollower& cgroups_;
  // The table's name never changes: taken once, for the log lines of drift repair.
  const std::string table_;
  EventLoop loop_;
  std::unique_ptr<sdbus::IConnection> bus_;
  std::optional<portier::FirewallService> service_;
  std::optional<portier::NetlinkChanges> changes_;
  std::optional<portier::PacketLog> packet_log_;
  std::optional<std::uint64_t> log_bound_generation_;
  bool told_ = false;
  signalfd_siginfo signal_{};
  std::exception_ptr failure_;
  // Declared after what their callbacks use, so they go first.
  Source signals_[std::size(kSignals)];
  Source retry_;
  Source cgroups_source_;
  Source bus_source_;
  Source bus_timeout_;
  Source deadline_;
  Source drift_source_;
  Source state_source_;
  Source packet_log_source_;
  Source packet_summary_;
  Source polkit_cancel_;  // polkit checks of callers that left (cancel_due_polkit_checks)
  Source heap_decay_;
  std::uint64_t trim_armed_for_ = 0;  // the whole loads heap_decay_ was armed after
};

int run(const Options& options) {
  block_signals();
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
    std::fprintf(stderr,
                 "portierd: cgroup v2 is not mounted: ports bound to a unit or cgroup are served "
                 "by nobody\n");
  portier::LiveCgroupTree cgroup_tree(cgroup2_root);
  portier::CgroupWatch cgroup_watch(cgroup2_root);
  firewall_options.cgroups = &cgroup_tree;
  firewall_options.interfaces = portier::host_interface_names;
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
      std::fprintf(stderr,
                   "portierd: %s %s: %s is not running: nobody may serve its ports until it runs\n",
                   owner.kind.c_str(), owner.name.c_str(), owner.owner.c_str());
  cgroups.after_change();

  Server server(firewall, kernel, cgroups);
  return server.run();
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
