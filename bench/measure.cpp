#include "measure.h"

#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace portier::bench {

double Samples::min() const { return ms.empty() ? 0 : *std::min_element(ms.begin(), ms.end()); }

double Samples::max() const { return ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end()); }

double Samples::median() const {
  if (ms.empty()) return 0;
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  std::size_t n = sorted.size();
  return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

std::string format_ms(double ms) {
  char text[32];
  if (ms < 1)
    std::snprintf(text, sizeof text, "%.0f µs", ms * 1000);
  else if (ms < 10)
    std::snprintf(text, sizeof text, "%.2f ms", ms);
  else if (ms < 1000)
    std::snprintf(text, sizeof text, "%.1f ms", ms);
  else
    std::snprintf(text, sizeof text, "%.2f s", ms / 1000);
  return text;
}

std::string Samples::summary(const std::string& unit) const {
  if (ms.empty()) return "—";
  if (unit == "ms") return format_ms(min()) + " / " + format_ms(median());
  char text[64];
  std::snprintf(text, sizeof text, "%.3g / %.3g %s", min(), median(), unit.c_str());
  return text;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double time_ms(const std::function<void()>& work) {
  double start = now_ms();
  work();
  return now_ms() - start;
}

double own_system_ms() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_stime.tv_sec) * 1000 + static_cast<double>(usage.ru_stime.tv_usec) / 1000;
}

bool ProcessRun::ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

ProcessRun run_process(const std::vector<std::string>& argv, bool quiet,
                       const std::vector<std::string>& extra_env) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e; ++e) env.push_back(*e);
  for (const std::string& e : extra_env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  ProcessRun run;
  pid_t pid = 0;
  double start = now_ms();
  int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(error));
  rusage usage{};
  while (wait4(pid, &run.status, 0, &usage) < 0) {
    if (errno != EINTR) throw std::runtime_error("wait4: " + std::string(std::strerror(errno)));
  }
  run.wall_ms = now_ms() - start;
  run.max_rss_kib = usage.ru_maxrss;
  run.user_ms = static_cast<double>(usage.ru_utime.tv_sec) * 1000 + static_cast<double>(usage.ru_utime.tv_usec) / 1000;
  run.system_ms = static_cast<double>(usage.ru_stime.tv_sec) * 1000 + static_cast<double>(usage.ru_stime.tv_usec) / 1000;
  return run;
}

namespace {

// The inode number the kernel gives the initial network namespace (PROC_NET_INIT_INO).
constexpr ino_t kInitialNetns = 0xEFFFFFF9U;

ino_t netns_inode(const char* path) {
  struct stat info {};
  if (stat(path, &info) != 0) return 0;
  return info.st_ino;
}

}  // namespace

void require_private_netns() {
  const ino_t self = netns_inode("/proc/self/ns/net");
  const ino_t pid1 = netns_inode("/proc/1/ns/net");  // unreadable in some containers: 0
  const char* host = std::getenv("PORTIER_BENCH_HOST_NETNS");  // set by run.sh
  if (self == 0 || self == kInitialNetns || (pid1 != 0 && self == pid1) ||
      (host && std::to_string(self) == host))
    throw std::runtime_error(
        "refusing to touch nftables in the machine's own network namespace (run inside "
        "`unshare -n` or `ip netns exec`)");
}

void enter_fresh_netns() {
  const ino_t before = netns_inode("/proc/self/ns/net");
  if (unshare(CLONE_NEWNET) != 0)
    throw std::runtime_error("unshare(CLONE_NEWNET): " + std::string(std::strerror(errno)));
  if (netns_inode("/proc/self/ns/net") == before) throw std::runtime_error("unshare gave no new namespace");
  require_private_netns();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  if (!file.flush()) throw std::runtime_error("cannot write " + path);
}

void print_table_header() {
  std::printf("| benchmark | portier min / median | baseline | baseline min / median | ratio | target |\n");
  std::printf("|---|---|---|---|---|---|\n");
}

void print_row(const Row& row) {
  std::string ratio = "—";
  std::string target = row.target.empty() ? "—" : row.target;
  auto verdict = [&](double value, double limit) {
    bool met = row.lower_is_better ? value <= limit : value >= limit;
    return met ? " (met)" : " (**missed**)";
  };
  if (!row.baseline.ms.empty() && row.baseline.median() > 0) {
    double value = row.portier.median() / row.baseline.median();
    char text[32];
    std::snprintf(text, sizeof text, "%.2fx", value);
    ratio = text;
    if (row.target_ratio > 0) target += verdict(value, row.target_ratio);
  }
  if (row.target_abs > 0 && !row.portier.ms.empty()) target += verdict(row.portier.median(), row.target_abs);
  std::string what = row.what;
  if (!row.note.empty()) what += " — " + row.note;
  std::printf("| %s | %s | %s | %s | %s | %s |\n", what.c_str(), row.portier.summary(row.unit).c_str(),
              row.baseline_name.empty() ? "—" : row.baseline_name.c_str(), row.baseline.summary(row.unit).c_str(),
              ratio.c_str(), target.c_str());
  std::fflush(stdout);
}

}  // namespace portier::bench
