// The policy model: what a TOML policy file says, validated, before compilation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "diagnostic.h"

namespace portier {

enum class Action { accept, drop, reject };
enum class Direction { in, out };
enum class Protocol { tcp, udp };

struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

struct Rule {
  std::string name;
  Direction direction = Direction::in;
  std::vector<Protocol> protocols;  // empty: any protocol
  std::vector<PortRange> ports;     // empty: any port; as written, not yet merged
  Action action = Action::accept;
  bool enabled = true;
  std::string comment;
  SourceLocation where;  // the [[rule]] table
};

struct Policy {
  std::string source;              // the file name the policy was read from
  Action input = Action::drop;     // new inbound connections no rule decides
  Action output = Action::accept;  // new outbound connections no rule decides
  std::vector<Rule> rules;

  const Rule* find_rule(std::string_view name) const;
  Rule* find_rule(std::string_view name);
};

std::string_view to_string(Action action);
std::string_view to_string(Direction direction);
std::string_view to_string(Protocol protocol);

/// What a rule matches, in a few words: `tcp,udp 137-139`.
std::string describe_match(const Rule& rule);

}  // namespace portier
