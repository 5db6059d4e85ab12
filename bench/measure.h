// Timing, child processes, network namespaces and table rows for the benchmarks.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace portier::bench {

/// Wall-clock durations of repeated runs of one thing, in milliseconds.
struct Samples {
  std::vector<double> ms;
  void add(double value) { ms.push_back(value); }
  double min() const;
  double median() const;
  double max() const;
  std::size_t size() const { return ms.size(); }
  /// `min / median` with units that suit the size (µs, ms or s); `unit` other than "ms"
  /// prints plain numbers in that unit, and max / median for throughput.
  std::string summary(const std::string& unit = "ms") const;
};

/// Milliseconds that `work` took.
double time_ms(const std::function<void()>& work);

/// CPU time this process has spent in the kernel so far, in milliseconds.
double own_system_ms();

/// How a child process went.
struct ProcessRun {
  double wall_ms = 0;
  int status = 0;             // wait status
  long max_rss_kib = 0;       // the child's peak resident set (getrusage)
  double user_ms = 0;         // its CPU time in user space
  double system_ms = 0;       // and in the kernel
  bool ok() const;            // exited with 0
};

/// Runs `argv` (PATH searched) with posix_spawn, so a big parent does not copy its page
/// tables, and waits for it. stdout/stderr go to /dev/null unless `quiet` is false.
/// Throws std::runtime_error if it cannot be started.
ProcessRun run_process(const std::vector<std::string>& argv, bool quiet = true,
                       const std::vector<std::string>& extra_env = {});

/// Moves this process into a new, empty network namespace (throws if it cannot) and
/// checks that it is not the namespace of PID 1. Every benchmark that loads rules calls
/// this first, so nothing ever reaches the machine's own ruleset.
void enter_fresh_netns();

/// Throws unless this process is in a network namespace other than PID 1's.
void require_private_netns();

/// `text` written to `path`; throws on failure.
void write_text(const std::string& path, const std::string& text);

/// One row of a results table: what, portier's figure, the baseline's, the ratio of the
/// medians, the target and whether it is met. `lower_is_better` for times.
struct Row {
  std::string what{};
  Samples portier{};
  std::string baseline_name{};
  Samples baseline{};
  std::string target{};     // e.g. "<= 0.8x", or empty
  double target_ratio = 0;   // 0: no target on the ratio
  double target_abs = 0;     // 0: no target on portier's median itself (same unit)
  bool lower_is_better = true;
  std::string unit = "ms";   // ms (times), or e.g. Gbit/s, MiB
  std::string note{};
};

/// The markdown header matching print_row().
void print_table_header();
void print_row(const Row& row);

/// A duration in the unit that suits it.
std::string format_ms(double ms);

/// Seconds on the monotonic clock.
double now_ms();

}  // namespace portier::bench
