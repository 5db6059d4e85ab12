#include "compile_policy.h"

#include <algorithm>

namespace portier {
namespace {

ir::Rule accept_established() {
  return {{ir::CtState{ir::ct_established | ir::ct_related}}, false, {ir::VerdictKind::accept, {}}, {}};
}

ir::Rule drop_invalid() {
  return {{ir::CtState{ir::ct_invalid}}, false, {ir::VerdictKind::drop, {}}, {}};
}

ir::Rule accept_loopback(bool outgoing) {
  return {{ir::LoopbackInterface{outgoing}}, false, {ir::VerdictKind::accept, {}}, {}};
}

// TCP gets a reset and everything else an ICMP(v6) port unreachable, as a closed port
// would answer. A rule over one protocol rejects directly; anything else goes through
// a chain that picks the answer per packet.
ir::Verdict reject_verdict(const std::vector<Protocol>& protocols) {
  if (protocols.size() == 1 && protocols[0] == Protocol::tcp)
    return {ir::VerdictKind::reject_tcp_reset, {}};
  if (protocols.size() == 1 && protocols[0] == Protocol::udp)
    return {ir::VerdictKind::reject_icmpx_port_unreachable, {}};
  return {ir::VerdictKind::jump, kRejectChain};
}

ir::Verdict verdict_for(Action action, const std::vector<Protocol>& protocols) {
  switch (action) {
    case Action::accept: return {ir::VerdictKind::accept, {}};
    case Action::drop: return {ir::VerdictKind::drop, {}};
    case Action::reject: return reject_verdict(protocols);
  }
  return {ir::VerdictKind::drop, {}};
}

ir::L4Proto l4proto(Protocol protocol) {
  return protocol == Protocol::tcp ? ir::L4Proto::tcp : ir::L4Proto::udp;
}

ir::Rule compile_rule(const Rule& rule) {
  ir::Rule compiled;
  if (!rule.protocols.empty()) {
    ir::L4ProtoIn protocols;
    for (Protocol protocol : rule.protocols) protocols.protocols.push_back(l4proto(protocol));
    std::sort(protocols.protocols.begin(), protocols.protocols.end());
    compiled.matches.push_back(std::move(protocols));
    if (!rule.ports.empty()) compiled.matches.push_back(ir::DestPortIn{merge_port_ranges(rule.ports)});
  }
  compiled.counter = true;
  compiled.verdict = verdict_for(rule.action, rule.protocols);
  compiled.comment = rule.name;
  return compiled;
}

ir::Chain reject_chain() {
  ir::Chain chain{kRejectChain, std::nullopt, {}};
  chain.rules.push_back({{ir::L4ProtoIn{{ir::L4Proto::tcp}}}, false,
                         {ir::VerdictKind::reject_tcp_reset, {}}, {}});
  chain.rules.push_back({{}, false, {ir::VerdictKind::reject_icmpx_port_unreachable, {}}, {}});
  return chain;
}

ir::Chain base_chain(const char* name, ir::Hook hook, Action default_action) {
  // A rejecting default still needs a dropping policy: the reject rule at the end of
  // the chain answers, the policy is what happens should anything fall past it.
  return {name, ir::BaseChain{hook, 0, default_action == Action::accept}, {}};
}

bool uses_chain(const ir::Chain& chain, const std::string& target) {
  return std::any_of(chain.rules.begin(), chain.rules.end(), [&](const ir::Rule& rule) {
    return rule.verdict.kind == ir::VerdictKind::jump && rule.verdict.chain == target;
  });
}

}  // namespace

std::vector<ir::PortRange> merge_port_ranges(const std::vector<PortRange>& ports) {
  std::vector<ir::PortRange> sorted;
  for (const PortRange& port : ports) sorted.push_back({port.first, port.last});
  std::sort(sorted.begin(), sorted.end(),
            [](const ir::PortRange& a, const ir::PortRange& b) { return a.first < b.first; });
  std::vector<ir::PortRange> merged;
  for (const ir::PortRange& range : sorted) {
    if (!merged.empty() && range.first <= static_cast<std::uint32_t>(merged.back().last) + 1) {
      merged.back().last = std::max(merged.back().last, range.last);
    } else {
      merged.push_back(range);
    }
  }
  return merged;
}

ir::Ruleset compile_policy(const Policy& policy) {
  ir::Chain input = base_chain(kInputChain, ir::Hook::input, policy.input);
  input.rules.push_back(accept_loopback(false));
  input.rules.push_back(accept_established());
  input.rules.push_back(drop_invalid());

  ir::Chain output = base_chain(kOutputChain, ir::Hook::output, policy.output);
  output.rules.push_back(accept_loopback(true));
  output.rules.push_back(accept_established());

  for (const Rule& rule : policy.rules) {
    if (!rule.enabled) continue;
    (rule.direction == Direction::in ? input : output).rules.push_back(compile_rule(rule));
  }
  if (policy.input == Action::reject)
    input.rules.push_back({{}, false, {ir::VerdictKind::jump, kRejectChain}, {}});
  if (policy.output == Action::reject)
    output.rules.push_back({{}, false, {ir::VerdictKind::jump, kRejectChain}, {}});

  ir::Ruleset ruleset;
  // The kernel resolves a jump when the rule is added, so the target comes first.
  if (uses_chain(input, kRejectChain) || uses_chain(output, kRejectChain))
    ruleset.chains.push_back(reject_chain());
  ruleset.chains.push_back(std::move(input));
  ruleset.chains.push_back(std::move(output));
  return ruleset;
}

}  // namespace portier
