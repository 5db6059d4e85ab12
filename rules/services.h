// Names the policy may use that the system defines: services from /etc/services and
// users from /etc/passwd. Parsed from text, so the policy engine stays testable.
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

class UserTable {
 public:
  /// Parses passwd(5) text: `name:x:uid:...`.
  static UserTable parse(std::string_view text);
  static UserTable load(const std::string& path = "/etc/passwd");

  std::optional<std::uint32_t> uid(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::uint32_t, std::less<>> uids_;
};

/// Everything the parser looks names up in.
struct SystemTables {
  ServiceTable services;
  UserTable users;
  static SystemTables load() { return {ServiceTable::load(), UserTable::load()}; }
};

}  // namespace portier
