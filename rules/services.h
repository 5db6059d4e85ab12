// Service names from /etc/services, so policies can say "ssh" instead of 22.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy.h"

namespace portier {

class ServiceTable {
 public:
  /// Parses services(5) text: `name port/proto [aliases...]`, '#' comments.
  static ServiceTable parse(std::string_view text);
  /// Reads /etc/services (or `path`); an unreadable file gives an empty table.
  static ServiceTable load(const std::string& path = "/etc/services");

  std::optional<std::uint16_t> port(std::string_view name, Protocol protocol) const;
  /// Every name known for `protocol`, for "did you mean" hints.
  std::vector<std::string> names(Protocol protocol) const;

 private:
  std::map<std::pair<std::string, Protocol>, std::uint16_t, std::less<>> ports_;
};

}  // namespace portier
