// The daemon core: the policy in force, the runtime toggles on top of it, and the
// kernel it is loaded into. No D-Bus here; the bus adaptor calls into this.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "compile_policy.h"
#include "kernel.h"
#include "parse_policy.h"
#include "policy.h"

namespace portier {

/// The policy file (or a reload of it) has errors; what() is the full report.
class PolicyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NoSuchRule : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RuleStatus {
  std::string name;
  bool enabled = true;
  std::string direction;  // in, out, forward
  std::string action;     // accept, drop, reject; dnat for a port forward
  std::string match;  // describe_match()
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
};

struct FirewallStatus {
  std::string policy_path;
  std::string table;
  std::size_t rules = 0;  // rules and port forwards
  std::size_t rules_enabled = 0;
  std::uint64_t generation = 0;
  std::chrono::system_clock::time_point last_applied;
};

struct FirewallOptions {
  std::string policy_path;
  std::string state_dir;  // empty: keep no state
  CompileOptions compile;
  /// Fills in SocketCgroup ids (daemon/cgroups.h); throws MissingCgroup. Empty: no binds
  /// can be loaded.
  std::function<void(ir::Ruleset&)> resolve_cgroups;
};

class Firewall {
 public:
  Firewall(Kernel& kernel, FirewallOptions options, SystemTables tables);

  /// Reads the policy file and loads it; on error nothing in the kernel changes and
  /// PolicyError or KernelError is thrown. Runtime toggles of rules that still exist
  /// stay in force.
  void reload();

  /// Turns one rule or port forward on or off at run time (the policy file is not edited).
  void set_rule_enabled(const std::string& name, bool enabled);

  std::vector<RuleStatus> rules() const;
  FirewallStatus status() const;
  const std::string& policy_path() const { return options_.policy_path; }
  std::uint64_t generation() const { return generation_; }

 private:
  Policy effective(const Policy& policy) const;
  void apply(const Policy& policy);
  void save_last_good(const std::string& text) const;

  Kernel& kernel_;
  FirewallOptions options_;
  SystemTables tables_;
  Policy policy_;                        // as the file says
  std::map<std::string, bool> toggles_;  // runtime overrides of `enabled`, by rule or forward name
  std::uint64_t generation_ = 0;
  std::chrono::system_clock::time_point last_applied_;
};

}  // namespace portier
