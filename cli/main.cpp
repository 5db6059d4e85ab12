// portierctl: the command line of the portier firewall.
#include <array>
#include <cstdio>
#include <exception>
#include <string_view>

#include "commands.h"
#include "polkit_agent.h"

namespace portier::cli {
namespace {

constexpr std::array kCommands = {
    Command{"status", status, "show whether portierd runs and what it has loaded",
            "usage: portierctl status [--json]\n\nexample: portierctl status\n"},
    Command{"rules", rules, "list the policy's rules with their packet and byte counters",
            "usage: portierctl rules [--json] [--exact]\n\n"
            "Counters are shortened on a terminal (1.2k, 3.4 MiB); --exact, or a pipe, prints\n"
            "plain integers.\n\nexample: portierctl rules\n"},
    Command{"enable", enable, "turn a rule or port forward on",
            "usage: portierctl enable NAME [--permanent]\n\n"
            "At run time only, unless --permanent also writes it into the policy file.\n\n"
            "example: portierctl enable ssh-in\n"},
    Command{"disable", disable, "turn a rule or port forward off",
            "usage: portierctl disable NAME [--permanent]\n\nexample: portierctl disable ssh-in\n"},
    Command{"reload", reload, "read the policy file again and load it",
            "usage: portierctl reload\n\nexample: portierctl reload\n"},
    Command{"apply", apply, "load a new policy file, optionally with automatic rollback",
            "usage: portierctl apply FILE [--confirm SECONDS]\n\n"
            "With --confirm, portierd goes back to the previous policy unless\n"
            "`portierctl confirm` arrives in time (even if this terminal is gone).\n\n"
            "example: portierctl apply new.toml --confirm 60\n"},
    Command{"confirm", confirm, "keep a policy applied with --confirm",
            "usage: portierctl confirm\n"},
    Command{"rollback", rollback, "go back to the previous policy now",
            "usage: portierctl rollback\n"},
    Command{"allow", allow, "allow something for a while (a timed rule)",
            "usage: portierctl allow PROTO[/PORT]... [--from WHERE]... [--to WHERE]... [--out] --for DURATION\n\n"
            "example: portierctl allow tcp/8080 --from lan --for 30m\n"},
    Command{"set", set, "add, remove or list elements of a named set",
            "usage: portierctl set add|del SET ELEMENT... [--timeout DURATION] [--json]\n"
            "       portierctl set add|del SET --file FILE [--timeout DURATION] [--json]\n"
            "       portierctl set list SET [--json]\n\n"
            "ELEMENTs are addresses, networks or ports, as the set's family says; --timeout\n"
            "only for sets with a timeout. Elements on the command line go in one transaction.\n"
            "--file reads one element a line ('#' comments, blank lines ignored; - is stdin),\n"
            "checks every line first (a bad one is named FILE:LINE:COL and nothing is sent),\n"
            "then sends them in calls of 50,000 elements: each call is one kernel transaction,\n"
            "so if one is refused the calls before it stay and nothing after it is sent. On a\n"
            "terminal, stderr shows how far it got.\n\n"
            "example: portierctl set add blocklist 203.0.113.9 --timeout 1h\n"
            "         portierctl set add blocklist --file blocklist.txt\n"},
    Command{"panic", panic, "drop everything but loopback, or stop doing so",
            "usage: portierctl panic on [--keep-established] | off\n\nexample: portierctl panic on\n"},
    Command{"monitor", monitor, "follow portierd's changes and the packets it logs, one line each",
            "usage: portierctl monitor [--json]\n\n"
            "Prints each ruleset portierd loads, rule toggles, pending confirmations, rollbacks\n"
            "and drift repairs, and the packets the policy's log statements send to its nflog\n"
            "group ([policy] log_group), at most 50 a second (then a count of the rest), until\n"
            "interrupted. --json: one JSON object a line.\n\n"
            "example: portierctl monitor\n"
            "  12:00:02 dropped tcp 10.200.1.2:40000 -> 10.200.1.1:139 in veth0 by netbios-in\n"},
    Command{"explain", explain, "which rule decides a packet of a given shape, and how",
            "usage: portierctl explain PROTO [SRC[:PORT]] -> [DST[:]]PORT [in|out|forward] [ZONE|IFACE]...\n"
            "                          [--icmp-type N] [--uid N] [--cgroup PATH] [--established]\n"
            "                          [--policy FILE] [--verbose] [--json]\n\n"
            "Follows the packet through the loaded ruleset (or, with --policy, through what FILE\n"
            "compiles to, offline) as the kernel would. A zone stands for one of its interfaces;\n"
            "forward takes FROM and TO. --uid and --cgroup describe the local socket; without them\n"
            "socket matches do not match. Rate limits count as not exceeded.\n\n"
            "example: portierctl explain tcp 203.0.113.9:40000 -> 139 in wan --verbose\n"},
    Command{"ports", ports, "listening ports, who serves them, and from where they are open",
            "usage: portierctl ports [--json]\n\n"
            "Every listening TCP socket and bound UDP socket in portierd's network namespace,\n"
            "with its process, user and systemd unit, and for each zone and for anywhere (an\n"
            "interface in no zone) whether a new connection gets through the loaded ruleset\n"
            "and which rule decides. Warnings: a [[bind]] port served by someone else, a port\n"
            "on all addresses open from anywhere. --json: see docs/portierctl-json.md.\n\n"
            "example: portierctl ports\n"},
    Command{"check", check, "validate a policy file (offline)",
            "usage: portierctl check FILE\n\nexample: portierctl check /etc/portier/policy.toml\n"},
    Command{"show", show, "print the nft ruleset portierd has loaded, or a policy file compiles to",
            "usage: portierctl show [--policy FILE]\n\n"
            "Without --policy, the ruleset portierd has loaded (runtime changes included); with\n"
            "--policy, what FILE compiles to, offline, in the form that replaces the table.\n\n"
            "example: portierctl show --policy /etc/portier/policy.toml | nft -c -f -\n"},
    Command{"diff", diff, "what applying a policy file would change",
            "usage: portierctl diff FILE [--nft] [--json]\n\n"
            "Rules and forwards added (+), removed (-) and changed (~) compared with what\n"
            "portierd has loaded; --nft also shows the nft text as a unified diff.\n\n"
            "example: portierctl diff /etc/portier/policy.toml --nft\n"},
    Command{"__complete", complete, "names for shell completion",
            "usage: portierctl __complete commands|rules|sets\n"},
    Command{"version", version, "print portierctl's version",
            "usage: portierctl version\n"},
};

void print_overview(std::FILE* out) {
  std::fprintf(out, "usage: portierctl [--no-ask-password] COMMAND [ARGS]\n\ncommands:\n");
  for (const Command& command : kCommands)
    if (!command.name.starts_with("__"))
      std::fprintf(out, "  %-9s %.*s\n", command.name.data(), static_cast<int>(command.summary.size()),
                   command.summary.data());
  std::fprintf(out,
               "\n'portierctl COMMAND --help' shows a command's usage.\n\n"
               "Changes need root or polkit's consent. On a terminal, portierctl lets polkit ask\n"
               "for a password (it starts pkttyagent); --no-ask-password refuses instead.\n");
}

const Command* find_command(std::string_view name) {
  for (const Command& command : kCommands)
    if (command.name == name) return &command;
  return nullptr;
}

}  // namespace

std::vector<std::string_view> command_names() {
  std::vector<std::string_view> names;
  for (const Command& command : kCommands)
    if (!command.name.starts_with("__")) names.push_back(command.name);
  return names;
}

int print_help(std::string_view name) {
  if (const Command* command = find_command(name))
    std::fwrite(command->usage.data(), 1, command->usage.size(), stdout);
  return kOk;
}

int usage_error(std::string_view name, std::string_view problem) {
  std::fprintf(stderr, "portierctl %.*s: %.*s\n", static_cast<int>(name.size()), name.data(),
               static_cast<int>(problem.size()), problem.data());
  if (const Command* command = find_command(name))
    std::fwrite(command->usage.data(), 1, command->usage.size(), stderr);
  return kUsage;
}

bool wants_help(Args args) {
  return args.size() == 1 && (std::string_view(args[0]) == "--help" || std::string_view(args[0]) == "-h");
}

}  // namespace portier::cli

int main(int argc, char** argv) {
  using namespace portier::cli;
  if (argc > 1 && std::string_view(argv[1]) == "--no-ask-password") {
    set_ask_password(false);
    --argc;
    ++argv;
  }
  std::string_view name = argc > 1 ? argv[1] : "status";
  if (name == "--help" || name == "-h" || name == "help") {
    print_overview(stdout);
    return kOk;
  }
  const Command* command = find_command(name);
  if (!command) {
    std::fprintf(stderr, "portierctl: unknown command '%s'\n", argv[1]);
    print_overview(stderr);
    return kUsage;
  }
  Args args = argc > 2 ? Args(argv + 2, static_cast<std::size_t>(argc - 2)) : Args();
  if (wants_help(args)) return print_help(name);
  try {
    return command->run(args);
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "portierctl %s: %s\n", argv[1] ? argv[1] : "status", failure.what());
    return kFailure;
  }
}
