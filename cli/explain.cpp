#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "compile_policy.h"
#include "daemon_client.h"
#include "explain.h"
#include "firewall1_api.h"
#include "output.h"
#include "parse_policy.h"

namespace portier::cli {
namespace {

// What the daemon's Explain returns, or the same computed offline.
struct Explanation {
  std::string verdict;
  std::string decided_by;
  std::string chain;
  std::string where;  // FILE:LINE:COL of the deciding policy rule, if a policy rule decided
  std::vector<std::string> trace;
  std::string published;  // "DNAT to 172.17.0.2:80 by ip nat DOCKER", or empty
};


void print(const Explanation& explanation, bool verbose, bool json) {
  if (json) {
    std::string out = "{\"verdict\":" + json_string(explanation.verdict) +
                      ",\"decided_by\":" + json_string(explanation.decided_by) +
                      ",\"chain\":" + json_string(explanation.chain) + ",\"where\":" + json_string(explanation.where) +
                      ",\"published\":" + json_string(explanation.published) +
                      ",\"trace\":[";
    for (std::size_t i = 0; i < explanation.trace.size(); ++i)
      out += (i ? "," : "") + json_string(explanation.trace[i]);
    std::printf("%s]}\n", out.c_str());
    return;
  }
  // `drop by rule netbios-from-wan (policy.toml:38:1) in chain input_wan`; fixed rules
  // and defaults have no place in the file.
  std::string line = explanation.verdict + " by ";
  line += explanation.where.empty() ? explanation.decided_by
                                    : "rule " + explanation.decided_by + " (" + explanation.where + ")";
  if (!explanation.chain.empty()) line += " in chain " + explanation.chain;
  if (!explanation.published.empty()) line += " (published port: " + explanation.published + ")";
  std::printf("%s\n", line.c_str());
  if (verbose)
    for (const std::string& step : explanation.trace) std::printf("  %s\n", step.c_str());
}

int explain_offline(const std::string& path, const std::vector<std::string>& words, bool verbose, bool json) {
  ParsedPolicy parsed = parse_policy_file(path, SystemTables::load());
  std::fputs(parsed.report().c_str(), stderr);
  if (!parsed.ok()) return kFailure;
  std::string error;
  auto shape = parse_packet_shape(words, parsed.policy, error);
  if (!shape) return usage_error("explain", error);
  ExplainResult result = explain_packet(compile_policy(parsed.policy), *shape);
  // As portierd does: only policy rules have a place to point at.
  Explanation explanation{result.verdict, result.decided_by,
                          result.chain,   decided_where(parsed.policy, result),
                          result.trace,   {}};
  print(explanation, verbose, json);
  return kOk;
}

template <typename T>
T field(const std::map<std::string, sdbus::Variant>& result, const std::string& key) {
  auto it = result.find(key);
  if (it == result.end() || !it->second.containsValueOfType<T>()) return T{};
  return it->second.get<T>();
}

}  // namespace

int explain(Args args) {
  std::vector<std::string> words;
  std::string policy;
  bool verbose = false;
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--policy") {
      if (i + 1 == args.size()) return usage_error("explain", "--policy needs a FILE");
      policy = args[++i];
    } else if (arg == "--verbose" || arg == "-v") {
      verbose = true;
    } else if (arg == "--json") {
      json = true;
    } else {
      words.emplace_back(arg);
    }
  }
  if (words.empty()) return usage_error("explain", "needs a packet shape");
  if (!policy.empty()) return explain_offline(policy, words, verbose, json);
  return with_daemon([&](DaemonClient& daemon) -> int {
    std::map<std::string, sdbus::Variant> result;
    try {
      result = daemon.Explain(words);
    } catch (const sdbus::Error& error) {
      // A shape portierd cannot read is a usage error, as it is offline with --policy.
      if (error.getName() == bus_error::kInvalidArgument)
        return usage_error("explain", error.getMessage());
      throw;
    }
    namespace key = bus_key::explain;
    print({field<std::string>(result, key::kVerdict), field<std::string>(result, key::kDecidedBy),
           field<std::string>(result, key::kChain), field<std::string>(result, key::kWhere),
           field<std::vector<std::string>>(result, key::kTrace),
           field<std::string>(result, key::kPublished)},
          verbose, json);
    return kOk;
  });
}

}  // namespace portier::cli
