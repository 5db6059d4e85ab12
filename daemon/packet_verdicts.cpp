#include "packet_verdicts.h"

namespace portier {
namespace {

std::string verdict_word(Action action) {
  switch (action) {
    case Action::accept:
      return "accepted";
    case Action::drop:
      return "dropped";
    case Action::reject:
      return "rejected";
  }
  return "logged";
}

}  // namespace

std::string PacketVerdicts::of(const LogPrefix& prefix, const Firewall& firewall) {
  std::string verdict = prefix.verdict;
  if (!prefix.rule.empty()) {
    if (generation_ != firewall.generation()) {
      rules_.clear();
      firewall.for_each_rule(
          [&](const Rule& rule) { rules_[rule.name] = verdict_word(rule.action); });
      generation_ = firewall.generation();
    }
    if (auto it = rules_.find(prefix.rule); it != rules_.end()) verdict = it->second;
  }
  if (verdict.empty()) verdict = "logged";
  return verdict;
}

}  // namespace portier
