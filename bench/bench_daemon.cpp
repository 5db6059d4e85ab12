// Benchmark 6 (daemon level) and the small tools run.sh combines: whole-process timing,
// bare D-Bus calls from a long-lived client, start to READY=1, and printing a row.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "commands.h"
#include "compile_policy.h"
#include "generate.h"
#include "measure.h"
#include "parse_policy.h"
#include "render_nft.h"

extern char** environ;

namespace portier::bench {
namespace {

void print_samples(const Samples& samples) {
  for (std::size_t i = 0; i < samples.ms.size(); ++i) std::printf("%s%.4f", i ? " " : "", samples.ms[i]);
  std::printf("\n");
}

Samples parse_samples(const std::string& text) {
  Samples samples;
  std::istringstream in(text);
  for (double value; in >> value;) samples.add(value);
  return samples;
}

// A datagram socket standing in for systemd's notify socket.
int bind_notify_socket(const std::string& path) {
  std::filesystem::remove(path);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (fd < 0 || path.size() >= sizeof address.sun_path) throw std::runtime_error("cannot make notify socket " + path);
  std::strcpy(address.sun_path, path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("cannot bind " + path + ": " + std::strerror(errno));
  return fd;
}

pid_t spawn_logged(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                   const std::string& log) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e; ++e) env.push_back(*e);
  for (const std::string& e : extra_env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(error));
  return pid;
}

// Waits for READY=1 on `fd` from the child `pid`; throws if it exits or `limit_ms` passes.
void wait_ready(int fd, pid_t pid, double limit_ms, const std::string& log) {
  double start = now_ms();
  char buffer[4096];
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid)
      throw std::runtime_error("portierd exited before READY=1; see " + log);
    double left = limit_ms - (now_ms() - start);
    if (left <= 0) throw std::runtime_error("no READY=1 within the time limit; see " + log);
    pollfd waiting{fd, POLLIN, 0};
    if (poll(&waiting, 1, static_cast<int>(std::min(left, 100.0))) <= 0) continue;
    ssize_t got = recv(fd, buffer, sizeof buffer - 1, 0);
    if (got <= 0) continue;
    buffer[got] = '\0';
    std::string_view message(buffer, static_cast<std::size_t>(got));
    if (message.starts_with("READY=1") || message.find("\nREADY=1") != std::string_view::npos) return;
  }
}

double rss_mib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmRSS:")) return std::stod(line.substr(6)) / 1024;
  return 0;
}

void stop(pid_t pid) {
  kill(pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
}

}  // namespace

int ready(const Args& args) {
  const std::string portierd = args.get("portierd", "portierd");
  const std::string policy = args.get("policy");
  const std::string dir = args.get("dir", "/tmp");
  const std::string what = args.get("what", policy);
  const std::size_t runs = args.number("runs", 7);
  const double idle_ms = static_cast<double>(args.number("idle-ms", 1000));
  if (policy.empty()) throw std::runtime_error("ready needs --policy FILE");
  if (!std::getenv("DBUS_SYSTEM_BUS_ADDRESS")) throw std::runtime_error("ready needs DBUS_SYSTEM_BUS_ADDRESS");

  const SystemTables tables = SystemTables::load();
  ParsedPolicy parsed = parse_policy_file(policy, tables);
  if (!parsed.ok()) throw std::runtime_error(parsed.report());
  const std::string rendered = dir + "/ready.nft";
  write_text(rendered, render_nft_replace(compile_policy(parsed.policy)));

  Samples start, rss, nft, nft_rss;
  for (std::size_t run = 0; run < runs; ++run) {
    // portierd, as systemd would start it: a new process, a notify socket, a fresh kernel.
    enter_fresh_netns();
    const std::string tag = dir + "/ready-" + std::to_string(run);
    std::filesystem::remove_all(tag + ".state");
    std::filesystem::create_directories(tag + ".state");
    int fd = bind_notify_socket(tag + ".notify");
    const std::string log = tag + ".log";
    double begin = now_ms();
    pid_t pid = spawn_logged({portierd, "--policy", policy, "--state-dir", tag + ".state"},
                             {"NOTIFY_SOCKET=" + tag + ".notify"}, log);
    try {
      wait_ready(fd, pid, 120000, log);
    } catch (...) {
      stop(pid);
      close(fd);
      throw;
    }
    start.add(now_ms() - begin);
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(idle_ms));
    rss.add(rss_mib(pid));
    stop(pid);
    close(fd);

    enter_fresh_netns();
    ProcessRun loaded = run_process({"nft", "-f", rendered});
    if (!loaded.ok()) throw std::runtime_error("nft -f " + rendered + " failed");
    nft.add(loaded.wall_ms);
    nft_rss.add(static_cast<double>(loaded.max_rss_kib) / 1024);
  }
  // --ready-target MS and --rss-target MIB: the targets for this policy, if any.
  const double ready_target = static_cast<double>(args.number("ready-target", 0));
  const double rss_target = static_cast<double>(args.number("rss-target", 0));
  auto below = [](double value, const char* unit) {
    return value > 0 ? "< " + std::to_string(static_cast<int>(value)) + " " + unit : std::string();
  };
  print_row({.what = "portierd start to READY=1, " + what + " (fresh ns, private bus)",
             .portier = start,
             .baseline_name = "`nft -f` of its rendering (whole process, fresh ns)",
             .baseline = nft,
             .target = below(ready_target, "ms"),
             .target_abs = ready_target});
  print_row({.what = "portierd idle RSS, " + what,
             .portier = rss,
             .baseline_name = "peak RSS of that `nft -f`",
             .baseline = nft_rss,
             .target = below(rss_target, "MiB"),
             .target_abs = rss_target,
             .unit = "MiB"});
  return 0;
}

int dbus_calls(const Args& args) {
  const std::size_t runs = args.number("runs", 21);
  auto connection = sdbus::createSystemBusConnection();
  auto proxy = sdbus::createProxy(*connection, "org.portier.Firewall1", "/org/portier/Firewall1");
  const std::string interface = "org.portier.Firewall1";
  const std::map<std::string, sdbus::Variant> no_options;
  // --only first|second: time only the disable (add) or only the enable (remove) calls;
  // the others still run, untimed, so that every call changes something.
  const std::string only = args.options.count("only") ? args.get("only") : "";
  Samples samples;
  for (std::size_t run = 0; run < (only.empty() ? runs : 2 * runs); ++run) {
    const bool second = run % 2 == 1;
    double start = now_ms();
    if (args.options.count("toggle")) {
      proxy->callMethod("SetRuleEnabled").onInterface(interface).withArguments(args.get("toggle"), second, no_options);
    } else if (args.options.count("set")) {
      std::vector<std::string> elements{args.get("element")};
      if (second)
        proxy->callMethod("RemoveSetElements").onInterface(interface).withArguments(args.get("set"), elements);
      else
        proxy->callMethod("AddSetElements").onInterface(interface).withArguments(args.get("set"), elements, no_options);
    } else {
      proxy->callMethod("Ping").onInterface("org.freedesktop.DBus.Peer");
    }
    if (only.empty() || only == (second ? "second" : "first")) samples.add(now_ms() - start);
  }
  print_samples(samples);
  return 0;
}

int time_command(const Args& args) {
  const std::size_t runs = args.number("runs", 11);
  std::vector<std::vector<std::string>> commands(1);
  for (const std::string& arg : args.positional) {
    if (arg == ":::")
      commands.emplace_back();
    else
      commands.back().push_back(arg);
  }
  for (const auto& command : commands)
    if (command.empty()) throw std::runtime_error("time: empty command");
  Samples samples;
  for (std::size_t run = 0; run < runs; ++run) {
    const auto& command = commands[run % commands.size()];
    ProcessRun result = run_process(command);
    if (!result.ok()) {
      std::string text;
      for (const std::string& arg : command) text += arg + " ";
      throw std::runtime_error("command failed (status " + std::to_string(result.status) + "): " + text);
    }
    samples.add(result.wall_ms);
  }
  print_samples(samples);
  return 0;
}

int row(const Args& args) {
  Row result;
  result.what = args.get("what");
  result.portier = parse_samples(args.get("portier"));
  result.baseline_name = args.get("baseline-name");
  result.baseline = parse_samples(args.get("baseline"));
  result.target = args.get("target");
  result.target_ratio = std::stod(args.get("target-ratio", "0"));
  result.target_abs = std::stod(args.get("target-abs", "0"));
  result.lower_is_better = args.get("higher-is-better", "0") != "1";
  result.unit = args.get("unit", "ms");
  result.note = args.get("note");
  if (args.get("header", "0") == "1") print_table_header();
  print_row(result);
  return 0;
}

int generate(const Args& args) {
  if (args.positional.size() != 3) throw std::runtime_error("generate policy|plain|set N FILE");
  const std::string& kind = args.positional[0];
  const std::size_t count = std::stoul(args.positional[1]);
  const std::string& path = args.positional[2];
  if (kind == "policy")
    write_text(path, generated_policy(count));
  else if (kind == "plain")
    write_text(path, plain_nft(count));
  else if (kind == "set")
    write_text(path, set_file(count));
  else
    throw std::runtime_error("unknown kind '" + kind + "'");
  return 0;
}

}  // namespace portier::bench
