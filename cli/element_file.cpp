#include "element_file.h"

#include <charconv>

#include "policy.h"

namespace portier::cli {
namespace {

enum class Kind { none, ipv4, ipv6, port };

const char* describe(Kind kind) {
  switch (kind) {
    case Kind::ipv4:
      return "an ipv4 address";
    case Kind::ipv6:
      return "an ipv6 address";
    case Kind::port:
      return "a port";
    case Kind::none:
      break;
  }
  return "nothing";
}

// What the daemon accepts for each family (element_fits in daemon/firewall.cpp): a port is
// decimal digits up to 65535, an address or network is what parse_cidr takes.
Kind kind_of(std::string_view text) {
  unsigned port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec == std::errc() && end == text.data() + text.size())
    return port <= 65535 ? Kind::port : Kind::none;
  auto cidr = parse_cidr(text);
  if (!cidr) return Kind::none;
  return cidr->family == Family::ipv4 ? Kind::ipv4 : Kind::ipv6;
}

}  // namespace

ElementFile read_element_file(std::istream& in, std::string_view name) {
  constexpr std::size_t kMaxErrors = 10;
  ElementFile result;
  std::size_t bad_lines = 0;
  Kind first_kind = Kind::none;
  std::uint32_t first_line = 0;
  auto error = [&](std::uint32_t line, std::size_t column, const std::string& message) {
    if (++bad_lines <= kMaxErrors)
      result.errors.push_back(std::string(name) + ":" + std::to_string(line) + ":" +
                              std::to_string(column) + ": error: " + message);
  };
  std::string line;
  std::uint32_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    auto begin = line.find_first_not_of(" \t\r");
    if (begin == std::string::npos) continue;
    auto end = line.find_last_not_of(" \t\r");
    std::string text = line.substr(begin, end - begin + 1);
    Kind kind = kind_of(text);
    if (kind == Kind::none) {
      error(number, begin + 1, "'" + text + "' is not an address, a network or a port");
      continue;
    }
    if (first_kind == Kind::none) {
      first_kind = kind;
      first_line = number;
    } else if (kind != first_kind) {
      error(number, begin + 1,
            "'" + text + "' is " + describe(kind) + ", but line " + std::to_string(first_line) +
                " holds " + describe(first_kind) + ": a set holds one family");
      continue;
    }
    result.elements.push_back(std::move(text));
    result.lines.push_back(number);
  }
  if (first_kind != Kind::none)
    result.family = first_kind == Kind::ipv4 ? "ipv4" : first_kind == Kind::ipv6 ? "ipv6" : "port";
  if (bad_lines > kMaxErrors)
    result.errors.push_back(std::string(name) + ": " + std::to_string(bad_lines - kMaxErrors) +
                            " more bad lines");
  return result;
}

}  // namespace portier::cli
