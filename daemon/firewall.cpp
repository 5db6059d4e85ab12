#include "firewall.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <tuple>

#include "cgroups.h"
#include "compile_policy.h"

namespace portier {

namespace {

bool is_toggleable(Policy& policy, const std::string& name) {
  return policy.find_rule(name) || policy.find_forward(name);
}

std::string place(const SourceLocation& where) {
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
}

// Where the policy defines what a kernel rule's comment names, for error messages.
SourceLocation where_defined(const Policy& policy, const std::string& name) {
  if (const Rule* rule = policy.find_rule(name)) return rule->where;
  for (const Bind& bind : policy.binds)
    if (bind.name == name) return bind.where;
  return {policy.source, 0, 0};
}

}  // namespace

Firewall::Firewall(Kernel& kernel, FirewallOptions options, SystemTables tables)
    : kernel_(kernel), options_(std::move(options)), tables_(std::move(tables)) {}

void Firewall::reload() {
  ParsedPolicy parsed = parse_policy_file(options_.policy_path, tables_);
  if (!parsed.ok()) throw PolicyError(parsed.report());
  apply(effective(parsed.policy));
  policy_ = std::move(parsed.policy);
  // Forget toggles of rules the new policy no longer has.
  std::erase_if(toggles_, [&](const auto& toggle) { return !is_toggleable(policy_, toggle.first); });
  try {
    save_last_good(parsed.sources.at(options_.policy_path));
  } catch (const std::exception& failure) {
    // The new ruleset is in force; only the fallback copy for a later start is stale.
    std::fprintf(stderr, "portierd: warning: %s\n", failure.what());
  }
}

void Firewall::set_rule_enabled(const std::string& name, bool enabled) {
  if (!is_toggleable(policy_, name))
    throw NoSuchRule("no rule or forward named '" + name + "' in the policy");
  auto toggles = toggles_;
  toggles[name] = enabled;
  std::swap(toggles, toggles_);
  try {
    apply(effective(policy_));
  } catch (...) {
    std::swap(toggles, toggles_);
    throw;
  }
}

Policy Firewall::effective(const Policy& policy) const {
  Policy result = policy;
  for (Rule& rule : result.rules)
    if (auto toggle = toggles_.find(rule.name); toggle != toggles_.end())
      rule.enabled = toggle->second;
  for (Forward& forward : result.forwards)
    if (auto toggle = toggles_.find(forward.name); toggle != toggles_.end())
      forward.enabled = toggle->second;
  return result;
}

void Firewall::apply(const Policy& policy) {
  ir::Ruleset ruleset = compile_policy(policy, options_.compile);
  if (options_.resolve_cgroups) {
    try {
      options_.resolve_cgroups(ruleset);
    } catch (const MissingCgroup& missing) {
      throw PolicyError(place(where_defined(policy, missing.owner)) + ": error: '" +
                        missing.owner + "': " + missing.what() + "\n");
    }
  }
  kernel_.apply(ruleset);
  ++generation_;
  last_applied_ = std::chrono::system_clock::now();
}

std::vector<RuleStatus> Firewall::rules() const {
  // A policy rule may be several kernel rules (zones, address families): add them up.
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> counters;
  for (const RuleCounter& counter : kernel_.read_counters(ir::Ruleset{}.table)) {
    if (counter.comment.empty()) continue;
    auto& [packets, bytes] = counters[counter.comment];
    packets += counter.packets;
    bytes += counter.bytes;
  }
  auto counted = [&](RuleStatus status) {
    if (auto it = counters.find(status.name); it != counters.end() && status.enabled)
      std::tie(status.packets, status.bytes) = it->second;
    return status;
  };

  Policy in_force = effective(policy_);
  std::vector<RuleStatus> result;
  for (const Rule& rule : in_force.rules)
    result.push_back(counted({rule.name, rule.enabled, std::string(to_string(rule.direction)),
                              std::string(to_string(rule.action)), describe_match(rule), 0, 0}));
  for (const Forward& forward : in_force.forwards)
    result.push_back(counted({forward.name, forward.enabled, "forward", "dnat",
                              describe_forward(forward), 0, 0}));
  return result;
}

FirewallStatus Firewall::status() const {
  FirewallStatus status;
  status.policy_path = options_.policy_path;
  status.table = ir::Ruleset{}.table;
  Policy in_force = effective(policy_);
  status.rules = in_force.rules.size() + in_force.forwards.size();
  for (const Rule& rule : in_force.rules) status.rules_enabled += rule.enabled ? 1 : 0;
  for (const Forward& forward : in_force.forwards) status.rules_enabled += forward.enabled ? 1 : 0;
  status.generation = generation_;
  status.last_applied = last_applied_;
  return status;
}

// The last policy the kernel accepted, for a later start whose file is broken.
// Written as temp file + fsync + rename so a crash leaves the old copy or the new one.
void Firewall::save_last_good(const std::string& text) const {
  if (options_.state_dir.empty()) return;
  std::filesystem::path final_path = std::filesystem::path(options_.state_dir) / "last-good.toml";
  std::filesystem::path temp_path = final_path;
  temp_path += ".tmp";
  int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot write " + temp_path.string());
  std::size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      throw std::system_error(saved, std::generic_category(), "cannot write " + temp_path.string());
    }
    written += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  std::filesystem::rename(temp_path, final_path);
}

}  // namespace portier
