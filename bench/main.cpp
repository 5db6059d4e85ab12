// portier_bench: the benchmarks' driver. bench/run.sh calls its subcommands; each prints
// markdown table rows (or raw samples for run.sh to combine), every figure beside a
// baseline measured in the same run.
#include <array>
#include <charconv>
#include <cstdio>
#include <exception>
#include <string_view>

#include "commands.h"

namespace portier::bench {

std::string Args::get(const std::string& key, const std::string& fallback) const {
  auto found = options.find(key);
  return found == options.end() ? fallback : found->second;
}

std::size_t Args::number(const std::string& key, std::size_t fallback) const {
  auto found = options.find(key);
  return found == options.end() ? fallback : std::stoul(found->second);
}

std::vector<std::size_t> Args::numbers(const std::string& key, const std::vector<std::size_t>& fallback) const {
  auto found = options.find(key);
  if (found == options.end()) return fallback;
  std::vector<std::size_t> result;
  std::string_view text = found->second;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    std::size_t value = 0;
    std::from_chars(item.data(), item.data() + item.size(), value);
    result.push_back(value);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return result;
}

namespace {

struct Command {
  std::string_view name;
  int (*run)(const Args&);
  std::string_view help;
};

constexpr std::array kCommands = {
    Command{"engine", engine, "--dir DIR [--sizes 10,1000,10000] [--runs N]: parse, compile, render, encode"},
    Command{"apply", apply, "--dir DIR [--rules N] [--runs N]: NetlinkKernel::apply vs nft -f"},
    Command{"reload", reload, "--dir DIR [--rules N] [--runs N]: parse+compile+apply vs nft -f"},
    Command{"sets", sets, "--dir DIR [--elements N] [--runs N] [--replace 1]: set file load vs nft -f"},
    Command{"load", load, "POLICY: parse, compile and apply into this (private) namespace"},
    Command{"ready", ready,
            "--portierd PATH --policy FILE --dir DIR [--runs N] [--what TEXT]: start to READY=1, idle RSS"},
    Command{"dbus-calls", dbus_calls,
            "[--toggle RULE | --set SET --element E | --ping 1] [--runs N]: bare D-Bus calls, ms samples"},
    Command{"time", time_command, "[--runs N] -- CMD... [::: CMD2...]: whole-process wall times, ms samples"},
    Command{"row", row,
            "--what TEXT --portier 'MS...' [--baseline-name T --baseline 'MS...'] [--target T "
            "--target-ratio R | --target-abs V] [--unit U] [--higher-is-better 1]: one table row"},
    Command{"generate", generate, "policy|set N FILE: write a generated policy or set file"},
};

Args parse_args(int argc, char** argv) {
  Args args;
  bool rest = false;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (!rest && arg == "--") {
      rest = true;
    } else if (!rest && arg.starts_with("--") && i + 1 < argc) {
      args.options[std::string(arg.substr(2))] = argv[++i];
    } else {
      args.positional.emplace_back(arg);
    }
  }
  return args;
}

}  // namespace
}  // namespace portier::bench

int main(int argc, char** argv) {
  using namespace portier::bench;
  std::string_view name = argc > 1 ? argv[1] : "";
  for (const Command& command : kCommands) {
    if (command.name != name) continue;
    try {
      return command.run(parse_args(argc, argv));
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "portier_bench %s: %s\n", argv[1], failure.what());
      return 1;
    }
  }
  std::fprintf(stderr, "usage: portier_bench COMMAND [ARGS]\n\ncommands:\n");
  for (const Command& command : kCommands)
    std::fprintf(stderr, "  %-10s %.*s\n", command.name.data(), static_cast<int>(command.help.size()),
                 command.help.data());
  return 2;
}
