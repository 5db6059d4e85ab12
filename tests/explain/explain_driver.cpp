// Explains many packet shapes against one policy file in one process: thousands of
// `portierctl explain --policy` runs would each parse and compile the policy again.
//
//   portier_explain_driver POLICY < shapes > verdicts
//
// Each input line is the words of one shape (as portierctl explain takes them); each output
// line is `VERDICT<TAB>DECIDED_BY<TAB>CHAIN<TAB>METER`, or `error<TAB>MESSAGE`. METER names the
// per-source meter set the packet would be counted in on its way (the differential test
// keeps each source under the meter's rate, since explain counts limits as not exceeded),
// or `-`.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "compile_policy.h"
#include "explain.h"
#include "parse_policy.h"

using namespace portier;

namespace {

// The ruleset with every meter rule matching regardless of rate and named after its meter:
// a packet this one decides by "meter @SET" is counted by SET in the real ruleset.
ir::Ruleset meters_over(ir::Ruleset ruleset) {
  for (ir::Chain& chain : ruleset.chains)
    for (ir::Rule& rule : chain.rules)
      for (ir::Match& match : rule.matches)
        if (const auto* meter = std::get_if<ir::MeterOver>(&match)) {
          rule.comment = "meter @" + meter->set;
          // Any source of the meter's family (its key is ip saddr or ip6 saddr).
          ir::AddressRange any;
          any.first.family = any.last.family = meter->family;
          any.last.bytes.fill(0xff);
          if (meter->family == ir::Family::ipv4) std::fill(any.last.bytes.begin() + 4, any.last.bytes.end(), 0);
          match = ir::AddressIn{meter->family, false, {any}};
        }
  return ruleset;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: portier_explain_driver POLICY < shapes\n");
    return 2;
  }
  ParsedPolicy parsed = parse_policy_file(argv[1], SystemTables::load());
  std::fputs(parsed.report().c_str(), stderr);
  if (!parsed.ok()) return 1;
  const ir::Ruleset ruleset = compile_policy(parsed.policy);
  const ir::Ruleset over = meters_over(ruleset);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream split(line);
    std::vector<std::string> words;
    for (std::string word; split >> word;) words.push_back(word);
    std::string error;
    auto shape = parse_packet_shape(words, parsed.policy, error);
    if (!shape) {
      std::cout << "error\t" << error << '\n';
      continue;
    }
    const ExplainResult result = explain_packet(ruleset, *shape);
    const ExplainResult metered = explain_packet(over, *shape);
    std::string meter = "-";
    if (metered.decided_by.starts_with("meter @")) meter = metered.decided_by.substr(7);
    std::cout << result.verdict << '\t' << result.decided_by << '\t' << result.chain << '\t' << meter << '\n';
  }
  return 0;
}
