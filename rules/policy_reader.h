// Internal to the parser: reads one TOML policy file into the model, collecting
// diagnostics. parse_policy.cpp drives it per file and merges the files; the values
// (ports, addresses, durations) are read in parse_values.cpp, the sections in
// parse_sections.cpp.
#pragma once

#include <toml++/toml.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "diagnostic.h"
#include "file_reader.h"
#include "policy.h"
#include "services.h"

namespace portier {

class PolicyReader {
 public:
  PolicyReader(std::string file_name, const SystemTables& tables, const FileReader& files,
               bool is_drop_in)
      : file_name_(std::move(file_name)), tables_(tables), files_(files), is_drop_in_(is_drop_in) {}

  /// Reads every section of `document` into `policy` (appending zones, rules, ...).
  /// `more_rules`, if given, is called after the document's rules are read and before its
  /// binds: where the rules of a file's tail read apart (PolicyReadCache) join, in the
  /// order of the whole file, diagnostics included.
  void read_document(const toml::table& document, Policy& policy,
                     const std::function<void()>& more_rules = {});
  /// Reads one `[[rule]]` table into `policy.rules` (nothing if it has errors).
  void read_rule(const toml::table& table, Policy& policy);
  /// Adds a diagnostic found elsewhere (a rule read apart), in order.
  void add(Diagnostic diagnostic) { diagnostics_.push_back(std::move(diagnostic)); }

  SourceLocation at(const toml::source_region& region) const {
    return {file_name_, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
  }
  void error(const toml::source_region& region, std::string message);
  void error_at(SourceLocation where, std::string message);
  std::vector<Diagnostic> take_diagnostics() { return std::move(diagnostics_); }
  std::size_t error_count() const;

  // parse_values.cpp
  std::optional<Action> action(const toml::node& node, std::string_view key);
  std::optional<std::string> string(const toml::node& node, std::string_view key);
  std::optional<bool> boolean(const toml::node& node, std::string_view key);
  /// A string or a list of strings.
  std::vector<std::pair<std::string, const toml::node*>> strings(const toml::node& node,
                                                                 std::string_view key);
  std::vector<Protocol> protocols(const toml::node& node);
  std::vector<PortRange> ports(const toml::node& node, const std::vector<Protocol>& protocols);
  std::optional<Cidr> cidr(std::string_view text, const toml::source_region& where);
  std::optional<std::chrono::seconds> duration(const toml::node& node, std::string_view key);
  std::optional<Rate> rate(const toml::node& node);
  std::optional<std::uint32_t> user(const toml::node& node, std::string* name);
  std::vector<Endpoint> endpoints(const toml::node& node, std::string_view key);
  bool valid_name(const toml::node& node, const std::string& name, std::string_view what);

  /// Reports keys of `table` that are not in `known`, suggesting the nearest known one.
  void check_keys(const toml::table& table, const std::vector<std::string>& known,
                  std::string_view where);

 private:
  // parse_sections.cpp
  void read_policy_section(const toml::table& table, Policy& policy);
  void read_nat_section(const toml::table& table, Policy& policy);
  void read_neighbours_section(const toml::table& table, Policy& policy);
  void read_zones(const toml::table& table, Policy& policy);
  void read_sets(const toml::table& table, Policy& policy);
  void read_set_file(const toml::node& node, NamedSet& set);
  void read_bind(const toml::table& table, Policy& policy);
  void read_forward(const toml::table& table, Policy& policy);
  template <typename Each>
  void each_table_of(const toml::node& node, std::string_view key, Each&& each);

  std::optional<std::uint16_t> port_number(std::string_view text, const toml::source_region& where);
  std::optional<PortRange> port_text(const std::string& text,
                                     const std::vector<Protocol>& protocols,
                                     const toml::source_region& where);
  std::optional<PortRange> service(const std::string& name, const std::vector<Protocol>& protocols,
                                   const toml::source_region& where);

  std::string file_name_;
  const SystemTables& tables_;
  const FileReader& files_;  // set files
  bool is_drop_in_;
  std::vector<Diagnostic> diagnostics_;
};

/// Why `unit` cannot name a unit that owns sockets (malformed, a template, a type without
/// a cgroup); none if it can.
std::optional<std::string> unit_name_problem(std::string_view unit);

/// Why `path` (without its leading '/') cannot name a cgroup below the root; none if it can.
std::optional<std::string> cgroup_path_problem(std::string_view path);

}  // namespace portier
