#include "render_nft.h"

#include <stdexcept>
#include <string_view>
#include <utility>

namespace portier {
namespace {

bool is_identifier(std::string_view name) {
  // nft's scanner only reads bare names that start with a letter; policy names are
  // validated upstream, this only keeps a bad IR from turning into a parse error in nft.
  if (name.empty() || name.size() > 255) return false;
  auto is_letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  if (!is_letter(name.front())) return false;
  for (char c : name) {
    bool is_digit = c >= '0' && c <= '9';
    if (!is_letter(c) && !is_digit && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

const std::string& checked_name(const std::string& name, std::string_view what) {
  if (!is_identifier(name)) {
    throw std::invalid_argument("cannot render " + std::string(what) + " name '" + name +
                                "': nft accepts only [A-Za-z][A-Za-z0-9_.-]*");
  }
  return name;
}

std::string quoted_comment(const std::string& comment) {
  // nft strings have no escapes, and the kernel-side userdata comment is capped at
  // 128 bytes by nft (NFTNL_UDATA_COMMENT_MAXLEN).
  if (comment.size() > 128) {
    throw std::invalid_argument("rule comment longer than 128 bytes: '" + comment + "'");
  }
  for (char c : comment) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      throw std::invalid_argument("rule comment '" + comment +
                                  "' has a quote, backslash or control character");
    }
  }
  return "\"" + comment + "\"";
}

const char* protocol_name(ir::L4Proto protocol) {
  switch (protocol) {
    case ir::L4Proto::tcp:
      return "tcp";
    case ir::L4Proto::udp:
      return "udp";
  }
  throw std::invalid_argument("unknown L4 protocol");
}

std::string port_range_text(const ir::PortRange& range) {
  std::string text = std::to_string(range.first);
  if (range.last != range.first) text += "-" + std::to_string(range.last);
  return text;
}

std::string port_list_text(const ir::DestPortIn& ports) {
  if (ports.ports.empty()) throw std::invalid_argument("empty port match");
  if (ports.ports.size() == 1) return port_range_text(ports.ports.front());
  std::string text = "{ ";
  for (std::size_t i = 0; i < ports.ports.size(); ++i) {
    if (i > 0) text += ", ";
    text += port_range_text(ports.ports[i]);
  }
  return text + " }";
}

std::string protocol_list_text(const ir::L4ProtoIn& protocols) {
  if (protocols.protocols.empty()) throw std::invalid_argument("empty protocol match");
  if (protocols.protocols.size() == 1) return protocol_name(protocols.protocols.front());
  std::string text = "{ ";
  for (std::size_t i = 0; i < protocols.protocols.size(); ++i) {
    if (i > 0) text += ", ";
    text += protocol_name(protocols.protocols[i]);
  }
  return text + " }";
}

std::string ct_state_text(const ir::CtState& state) {
  // nft prints the bits in the order of its ct_state symbol table, not by value.
  static constexpr std::pair<ir::CtStateBit, const char*> kBits[] = {
      {ir::ct_invalid, "invalid"}, {ir::ct_established, "established"}, {ir::ct_related, "related"},
      {ir::ct_new, "new"},         {ir::ct_untracked, "untracked"},
  };
  std::uint32_t known = 0;
  std::string text;
  for (const auto& [bit, name] : kBits) {
    known |= bit;
    if ((state.mask & bit) == 0) continue;
    if (!text.empty()) text += ",";
    text += name;
  }
  if (text.empty() || (state.mask & ~known) != 0) {
    throw std::invalid_argument("ct state mask " + std::to_string(state.mask) +
                                " is empty or has unknown bits");
  }
  return "ct state " + text;
}

std::string matches_text(const std::vector<ir::Match>& matches) {
  std::string text;
  auto append = [&text](const std::string& part) {
    if (!text.empty()) text += ' ';
    text += part;
  };
  for (std::size_t i = 0; i < matches.size(); ++i) {
    const ir::Match& match = matches[i];
    if (const auto* loopback = std::get_if<ir::LoopbackInterface>(&match)) {
      append(loopback->outgoing ? "oif \"lo\"" : "iif \"lo\"");
    } else if (const auto* state = std::get_if<ir::CtState>(&match)) {
      append(ct_state_text(*state));
    } else if (const auto* protocols = std::get_if<ir::L4ProtoIn>(&match)) {
      const auto* ports =
          i + 1 < matches.size() ? std::get_if<ir::DestPortIn>(&matches[i + 1]) : nullptr;
      if (ports == nullptr) {
        append("meta l4proto " + protocol_list_text(*protocols));
        continue;
      }
      // `tcp dport` carries its own protocol dependency; nft lists the pair that way.
      if (protocols->protocols.size() == 1) {
        append(std::string(protocol_name(protocols->protocols.front())) + " dport " +
               port_list_text(*ports));
      } else {
        append("meta l4proto " + protocol_list_text(*protocols) + " th dport " +
               port_list_text(*ports));
      }
      ++i;
    } else {
      throw std::invalid_argument("a port match must directly follow a protocol match");
    }
  }
  return text;
}

std::string verdict_text(const ir::Verdict& verdict) {
  switch (verdict.kind) {
    case ir::VerdictKind::accept:
      return "accept";
    case ir::VerdictKind::drop:
      return "drop";
    case ir::VerdictKind::jump:
      return "jump " + checked_name(verdict.chain, "jump target chain");
    case ir::VerdictKind::reject_tcp_reset:
      return "reject with tcp reset";
    case ir::VerdictKind::reject_icmpx_port_unreachable:
      return "reject with icmpx port-unreachable";
  }
  throw std::invalid_argument("unknown verdict");
}

std::string rule_text(const ir::Rule& rule) {
  std::string text = matches_text(rule.matches);
  auto append = [&text](const std::string& part) {
    if (!text.empty()) text += ' ';
    text += part;
  };
  if (rule.counter) append("counter");
  append(verdict_text(rule.verdict));
  if (!rule.comment.empty()) append("comment " + quoted_comment(rule.comment));
  return text;
}

const char* hook_name(ir::Hook hook) {
  switch (hook) {
    case ir::Hook::input:
      return "input";
    case ir::Hook::output:
      return "output";
    case ir::Hook::forward:
      return "forward";
  }
  throw std::invalid_argument("unknown hook");
}

std::string priority_text(std::int32_t priority) {
  if (priority == 0) return "filter";
  if (priority > 0) return "filter + " + std::to_string(priority);
  return "filter - " + std::to_string(-static_cast<std::int64_t>(priority));
}

}  // namespace

std::string render_nft(const ir::Ruleset& ruleset) {
  std::string text = "table inet " + checked_name(ruleset.table, "table") + " {\n";
  for (std::size_t c = 0; c < ruleset.chains.size(); ++c) {
    const ir::Chain& chain = ruleset.chains[c];
    if (c > 0) text += "\n";
    text += "\tchain " + checked_name(chain.name, "chain") + " {\n";
    if (chain.base) {
      text += std::string("\t\ttype filter hook ") + hook_name(chain.base->hook) + " priority " +
              priority_text(chain.base->priority) + "; policy " +
              (chain.base->policy_accept ? "accept" : "drop") + ";\n";
    }
    for (const ir::Rule& rule : chain.rules) text += "\t\t" + rule_text(rule) + "\n";
    text += "\t}\n";
  }
  return text + "}\n";
}

std::string render_nft_replace(const ir::Ruleset& ruleset) {
  const std::string& table = checked_name(ruleset.table, "table");
  return "table inet " + table + "\ndelete table inet " + table + "\n" + render_nft(ruleset);
}

}  // namespace portier
