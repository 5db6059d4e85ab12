#include <cstdio>
#include <string>

#include "commands.h"
#include "parse_policy.h"

namespace portier::cli {

int check(Args args) {
  if (args.size() != 1) return usage_error("check", "needs exactly one policy FILE");
  ParsedPolicy parsed = parse_policy_file(args[0], SystemTables::load());
  std::fputs(parsed.report().c_str(), stderr);
  if (!parsed.ok()) return kFailure;
  std::printf("%s: ok, %zu rules\n", args[0], parsed.policy.rules.size());
  return kOk;
}

}  // namespace portier::cli
