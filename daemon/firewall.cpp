#include "firewall.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "compile_policy.h"

namespace portier {

Firewall::Firewall(Kernel& kernel, std::string policy_path, std::string state_dir,
                   SystemTables tables)
    : kernel_(kernel),
      policy_path_(std::move(policy_path)),
      state_dir_(std::move(state_dir)),
      tables_(std::move(tables)) {}

void Firewall::reload() {
  ParsedPolicy parsed = parse_policy_file(policy_path_, tables_);
  if (!parsed.ok()) throw PolicyError(parsed.report());
  apply(effective(parsed.policy));
  policy_ = std::move(parsed.policy);
  // Forget toggles of rules the new policy no longer has.
  std::erase_if(toggles_, [&](const auto& toggle) { return !policy_.find_rule(toggle.first); });
  try {
    save_last_good(parsed.sources.at(policy_path_));
  } catch (const std::exception& failure) {
    // The new ruleset is in force; only the fallback copy for a later start is stale.
    std::fprintf(stderr, "portierd: warning: %s\n", failure.what());
  }
}

void Firewall::set_rule_enabled(const std::string& name, bool enabled) {
  if (!policy_.find_rule(name)) throw NoSuchRule("no rule named '" + name + "' in the policy");
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
  return result;
}

void Firewall::apply(const Policy& policy) {
  kernel_.apply(compile_policy(policy));
  ++generation_;
  last_applied_ = std::chrono::system_clock::now();
}

std::vector<RuleStatus> Firewall::rules() const {
  std::map<std::string, const RuleCounter*> counters;
  auto kernel_counters = kernel_.read_counters(ir::Ruleset{}.table);
  for (const RuleCounter& counter : kernel_counters)
    if (!counter.comment.empty()) counters.emplace(counter.comment, &counter);

  std::vector<RuleStatus> result;
  for (const Rule& rule : effective(policy_).rules) {
    RuleStatus status{rule.name, rule.enabled, rule.direction, rule.action,
                      describe_match(rule), 0, 0};
    if (auto it = counters.find(rule.name); it != counters.end() && rule.enabled) {
      status.packets = it->second->packets;
      status.bytes = it->second->bytes;
    }
    result.push_back(std::move(status));
  }
  return result;
}

FirewallStatus Firewall::status() const {
  FirewallStatus status;
  status.policy_path = policy_path_;
  status.table = ir::Ruleset{}.table;
  Policy in_force = effective(policy_);
  status.rules = in_force.rules.size();
  for (const Rule& rule : in_force.rules) status.rules_enabled += rule.enabled ? 1 : 0;
  status.generation = generation_;
  status.last_applied = last_applied_;
  return status;
}

// The last policy the kernel accepted, for a later start whose file is broken.
// Written as temp file + fsync + rename so a crash leaves the old copy or the new one.
void Firewall::save_last_good(const std::string& text) const {
  if (state_dir_.empty()) return;
  std::filesystem::path final_path = std::filesystem::path(state_dir_) / "last-good.toml";
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
