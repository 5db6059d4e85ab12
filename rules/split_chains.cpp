#include "split_chains.h"

#include <string>
#include <utility>
#include <vector>

namespace portier {
namespace {

// A verdict that ends evaluation (accept, drop, reject), or that comes back to the next
// rule (jump, none), does the same from a part as from the chain the part came from.
// Only the policy's rules move: the fixed ones (loopback, conntrack, no comment) and the
// default verdict ("default ...") stay in the chain, where a reader looks for them.
bool movable(const ir::Rule& rule) {
  if (rule.comment.empty() || rule.comment.starts_with("default ")) return false;
  switch (rule.verdict.kind) {
    case ir::VerdictKind::accept:
    case ir::VerdictKind::drop:
    case ir::VerdictKind::jump:
    case ir::VerdictKind::reject_tcp_reset:
    case ir::VerdictKind::reject_icmpx_port_unreachable:
    case ir::VerdictKind::none:
      return true;
    default:
      return false;
  }
}

ir::Rule jump_to(const std::string& chain) {
  ir::Rule rule;
  rule.verdict.kind = ir::VerdictKind::jump;
  rule.verdict.chain = chain;
  return rule;
}

}  // namespace

void split_long_chains(ir::Ruleset& ruleset, std::size_t above, std::size_t per_part) {
  std::vector<ir::Chain> chains;
  chains.reserve(ruleset.chains.size());
  for (ir::Chain& chain : ruleset.chains) {
    if (chain.rules.size() <= above) {
      chains.push_back(std::move(chain));
      continue;
    }
    std::vector<ir::Rule> kept;
    std::size_t parts = 0;
    std::vector<ir::Rule>& rules = chain.rules;
    for (std::size_t r = 0; r < rules.size();) {
      std::size_t end = r;
      while (end < rules.size() && movable(rules[end])) ++end;
      if (end - r <= 1) {  // a jump to one rule would only add a jump
        if (end == r) ++end;
        for (; r < end; ++r) kept.push_back(std::move(rules[r]));
        continue;
      }
      for (; r < end;) {
        std::size_t part_end = std::min(end, r + per_part);
        ir::Chain part{chain.name + "/" + std::to_string(++parts), std::nullopt, {}};
        part.rules.reserve(part_end - r);
        for (; r < part_end; ++r) part.rules.push_back(std::move(rules[r]));
        kept.push_back(jump_to(part.name));
        chains.push_back(std::move(part));
      }
    }
    chain.rules = std::move(kept);
    chains.push_back(std::move(chain));
  }
  ruleset.chains = std::move(chains);
}

}  // namespace portier
