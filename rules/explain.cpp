// Placeholder until the evaluator lands (being written now); fails loudly rather than guess.
#include "explain.h"

#include <stdexcept>

namespace portier {

ExplainResult explain_packet(const ir::Ruleset&, const PacketShape&) {
  throw std::runtime_error("explain is not available in this build");
}

std::optional<PacketShape> parse_packet_shape(const std::vector<std::string>&, const Policy&, std::string& error) {
  error = "explain is not available in this build";
  return std::nullopt;
}

}  // namespace portier
