#include "policy.h"

#include <algorithm>
#include <utility>

namespace portier {

const Rule* Policy::find_rule(std::string_view name) const {
  auto it = std::find_if(rules.begin(), rules.end(), [&](const Rule& r) { return r.name == name; });
  return it == rules.end() ? nullptr : &*it;
}

Rule* Policy::find_rule(std::string_view name) {
  return const_cast<Rule*>(std::as_const(*this).find_rule(name));
}

std::string_view to_string(Action action) {
  switch (action) {
    case Action::accept: return "accept";
    case Action::drop: return "drop";
    case Action::reject: return "reject";
  }
  return "?";
}

std::string_view to_string(Direction direction) {
  return direction == Direction::in ? "in" : "out";
}

std::string_view to_string(Protocol protocol) {
  return protocol == Protocol::tcp ? "tcp" : "udp";
}

std::string describe_match(const Rule& rule) {
  std::string text;
  for (std::size_t i = 0; i < rule.protocols.size(); ++i) {
    if (i > 0) text += ',';
    text += to_string(rule.protocols[i]);
  }
  if (text.empty()) text = "any";
  if (!rule.ports.empty()) {
    text += ' ';
    for (std::size_t i = 0; i < rule.ports.size(); ++i) {
      if (i > 0) text += ',';
      text += std::to_string(rule.ports[i].first);
      if (rule.ports[i].last != rule.ports[i].first) text += '-' + std::to_string(rule.ports[i].last);
    }
  }
  return text;
}

}  // namespace portier
