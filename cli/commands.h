// portierctl's subcommands: one file each, dispatched from main.cpp's table.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace portier::cli {

/// Exit codes, the same for every command.
enum Exit : int { kOk = 0, kFailure = 1, kUsage = 2, kDaemonUnreachable = 3 };

/// Arguments after the subcommand name.
using Args = std::span<char* const>;

struct Command {
  std::string_view name;
  int (*run)(Args args);
  std::string_view summary;
  std::string_view usage;  // the synopsis and an example, for --help
};

int status(Args args);
int rules(Args args);
int enable(Args args);
int disable(Args args);
int reload(Args args);
int apply(Args args);
int confirm(Args args);
int rollback(Args args);
int allow(Args args);
int set(Args args);
int panic(Args args);
int monitor(Args args);
int check(Args args);
int explain(Args args);
int ports(Args args);
int show(Args args);
int diff(Args args);
int complete(Args args);
int version(Args args);

/// Prints `usage` to stderr with a "usage error" line and returns kUsage.
int usage_error(std::string_view command, std::string_view problem);

/// A duration word ("90s", "30m", "1d12h"; rules/parse_policy.h) as the u32 of seconds the
/// bus carries; none if it is not one or is longer (allow --for, set --timeout).
std::optional<std::uint32_t> duration_seconds(std::string_view text);

/// True when args is exactly --help or -h; the caller then prints its usage.
bool wants_help(Args args);

/// Every command name, for completion.
std::vector<std::string_view> command_names();

/// Prints the usage of `name` from the table to stdout and returns kOk.
int print_help(std::string_view name);

}  // namespace portier::cli
