// Address arithmetic shared by the nft renderer and the netlink encoder: both must agree
// on which ranges are CIDR prefixes, since nft encodes and prints those differently.
#pragma once

#include <cstdint>
#include <optional>

#include "ruleset.h"

namespace portier::ir {

/// 4 for IPv4, 16 for IPv6.
constexpr std::uint32_t address_length(Family family) { return family == Family::ipv4 ? 4 : 16; }

/// The prefix length if `range` is exactly one CIDR block (a single address is a /32 or
/// /128), nullopt otherwise.
inline std::optional<std::uint32_t> prefix_length(const AddressRange& range) {
  const std::uint32_t bytes = address_length(range.first.family);
  std::uint32_t length = 0;
  // Network bits: identical in both ends. Host bits: all 0 in first, all 1 in last.
  while (length < bytes * 8) {
    const std::uint32_t byte = length / 8;
    const auto bit = static_cast<std::uint8_t>(0x80u >> (length % 8));
    if ((range.first.bytes[byte] & bit) != (range.last.bytes[byte] & bit)) break;
    ++length;
  }
  for (std::uint32_t host = length; host < bytes * 8; ++host) {
    const std::uint32_t byte = host / 8;
    const auto bit = static_cast<std::uint8_t>(0x80u >> (host % 8));
    if ((range.first.bytes[byte] & bit) != 0 || (range.last.bytes[byte] & bit) == 0) {
      return std::nullopt;
    }
  }
  return length;
}

}  // namespace portier::ir
