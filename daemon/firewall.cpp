#include "firewall.h"

#include <malloc.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>
#include <unordered_set>

#include "neighbours.h"
#include "render_nft.h"
#include "state_writer.h"
#include "write_policy.h"

namespace portier {
namespace {

constexpr std::size_t kMaxElementsPerCall = 1'000'000;
constexpr auto kMaxTimedRule = std::chrono::hours(24 * 30);

bool is_toggleable(const Policy& policy, const std::string& name) {
  return policy.find_rule(name) || std::any_of(policy.forwards.begin(), policy.forwards.end(),
                                               [&](const Forward& f) { return f.name == name; });
}

// A set element as the user wrote it, checked against the set's family.
bool element_fits(const NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(element.data(), element.data() + element.size(), value);
    return ec == std::errc() && end == element.data() + element.size() && value <= 65535;
  }
  auto cidr = parse_cidr(element);
  return cidr && (cidr->family == Family::ipv4) == (set.family == SetFamily::ipv4);
}

void add_element(NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) {
    auto port = static_cast<std::uint16_t>(std::stoul(element));
    set.ports.push_back({port, port});
  } else {
    set.addresses.push_back(*parse_cidr(element));
  }
}

void remove_element(NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) {
    auto port = static_cast<std::uint16_t>(std::stoul(element));
    std::erase(set.ports, PortRange{port, port});
  } else {
    std::erase(set.addresses, *parse_cidr(element));
  }
}

std::string format_element(const NamedSet& set, std::size_t index) {
  if (set.family != SetFamily::port) return to_string(set.addresses[index]);
  const PortRange& range = set.ports[index];
  return range.first == range.last ? std::to_string(range.first)
                                   : std::to_string(range.first) + "-" + std::to_string(range.last);
}

}  // namespace

std::string_view to_string(Mode mode) {
  switch (mode) {
    case Mode::normal:
      return "normal";
    case Mode::pending_confirm:
      return "pending-confirm";
    case Mode::panic:
      return "panic";
  }
  return "?";
}

Firewall::Firewall(Kernel& kernel, FirewallOptions options, SystemTables tables)
    : kernel_(kernel),
      options_(std::move(options)),
      bound_(options_.cgroups, options_.now),
      tables_(std::move(tables)),
      policy_file_(options_.policy_path, options_.state_dir) {}

std::string Firewall::state_file(std::string_view name) const {
  return (std::filesystem::path(options_.state_dir) / name).string();
}

// Whether a rule or forward of the policy file is on: its runtime toggle, if it has one.
static bool enabled_now(const RuntimeState& runtime, const std::string& name, bool in_file) {
  auto toggle = runtime.toggles.find(name);
  return toggle == runtime.toggles.end() ? in_file : toggle->second;
}

Policy Firewall::effective(const Policy& policy, const RuntimeState& runtime) const {
  Policy result = policy;
  for (Rule& rule : result.rules) rule.enabled = enabled_now(runtime, rule.name, rule.enabled);
  for (Forward& forward : result.forwards)
    forward.enabled = enabled_now(runtime, forward.name, forward.enabled);
  for (const TimedRule& timed : runtime.timed_rules) result.rules.push_back(timed.rule);
  for (NamedSet& set : result.sets) {
    for (const RuntimeElement& element : runtime.removed_elements)
      if (element.set == set.name && element_fits(set, element.element))
        remove_element(set, element.element);
    for (const RuntimeElement& element : runtime.added_elements)
      if (element.set == set.name && element_fits(set, element.element))
        add_element(set, element.element);
  }
  return result;
}

Firewall::Built Firewall::build(const Policy& policy, const RuntimeState& runtime) const {
  Built built;
  if (runtime.panic) {
    built.full = compile_panic(runtime.panic_keep_established, options_.compile);
    return built;
  }
  Policy in_force = effective(policy, runtime);
  built.disabled = disabled_names(in_force);
  // Compiled with everything enabled: toggles then only add or remove kernel rules.
  for (Rule& rule : in_force.rules) rule.enabled = true;
  for (Forward& forward : in_force.forwards) forward.enabled = true;
  built.full = compile_policy(in_force, options_.compile);
  // A unit that does not run is a state, not an error: its set is empty, so its ports
  // are served by nobody until it starts (follow_cgroups).
  bound_.fill(built.full);
  return built;
}

void Firewall::applied(std::string_view reason) {
  ++generation_;
  last_applied_ = options_.now();
  if (events_) events_->applied(generation_, reason);
}

// Loads `built` into the kernel the cheapest way that is correct: nothing when it is what
// the kernel has, the toggled rules alone when only the enabled set changed, otherwise a
// whole replacement of the table in one transaction.
void Firewall::install(Built built, std::string_view reason) {
  take_out_removed();  // full_ is compared whole below
  if (kernel_has_full_ && built.full == full_) {
    if (built.disabled != disabled_) {
      edit_rules(built.disabled);
      applied(reason);
    }
    return;
  }
  RuleHandles loaded;
  try {
    loaded = kernel_.apply(without_owners(built.full, built.disabled));
  } catch (const KernelError& refused) {
    // Kernels before 5.12 (owner) or 6.9 (persist) refuse the flags: go on without them.
    std::string what = refused.what();
    bool flags_refused = built.full.owner && refused.object() == KernelObject::table &&
                         (refused.error() == EOPNOTSUPP || refused.error() == EINVAL);
    if (!flags_refused) throw;
    std::fprintf(
        stderr,
        "portierd: the kernel refused an owned, persistent table (%s): loading it without\n",
        what.c_str());
    options_.compile.owner = false;
    built.full.owner = built.full.persist = false;
    loaded = kernel_.apply(without_owners(built.full, built.disabled));
  }
  // Handles come for the rules loaded; spread them over `full`, 0 for the left-out ones.
  handles_.assign(built.full.chains.size(), {});
  for (std::size_t c = 0; c < built.full.chains.size(); ++c) {
    std::size_t next = 0;
    for (const ir::Rule& rule : built.full.chains[c].rules) {
      bool present = built.disabled.count(rule_owner(rule)) == 0;
      handles_[c].push_back(
          present && c < loaded.size() && next < loaded[c].size() ? loaded[c][next++] : 0);
    }
  }
  positions_.clear();
  for (std::size_t c = 0; c < built.full.chains.size(); ++c)
    for (std::size_t r = 0; r < built.full.chains[c].rules.size(); ++r)
      if (std::string_view owner = rule_owner(built.full.chains[c].rules[r]); !owner.empty())
        positions_[std::string(owner)].push_back({c, r});
  element_positions_.clear();
  map_order_.assign(built.full.maps.size(), {});
  for (std::size_t m = 0; m < built.full.maps.size(); ++m)
    for (std::size_t e = 0; e < built.full.maps[m].elements.size(); ++e) {
      const std::string& owner = built.full.maps[m].elements[e].comment;
      element_positions_[owner].push_back({m, e});
      if (built.disabled.count(owner) == 0) map_order_[m].push_back(e);
    }
  full_ = std::move(built.full);
  disabled_ = std::move(built.disabled);
  kernel_has_full_ = true;
  bound_.loaded(full_);
  applied(reason);
  heap_to_trim_ = true;
}

// One small transaction: the kernel rules of the rules that go out are deleted by
// handle, those that come in are inserted after the nearest rule before them that stays.
void Firewall::edit_rules(const std::set<std::string, std::less<>>& disabled) {
  TableEdit edit;
  std::vector<RulePosition> inserted;
  std::vector<RulePosition> removed;
  for (std::size_t c = 0; c < full_.chains.size(); ++c) {
    const ir::Chain& chain = full_.chains[c];
    std::uint64_t after = 0;
    std::vector<std::size_t> group;
    auto flush = [&] {
      // Inserts after the same rule keep their order (TableEdit, encode_edit_batch).
      for (std::size_t r : group) {
        edit.inserts.push_back({chain.name, after, chain.rules[r]});
        inserted.push_back({c, r});
      }
      group.clear();
    };
    for (std::size_t r = 0; r < chain.rules.size(); ++r) {
      bool was = handles_[c][r] != 0;
      bool will = disabled.count(rule_owner(chain.rules[r])) == 0;
      if (was && !will) {
        edit.removes.push_back({chain.name, handles_[c][r]});
        removed.push_back({c, r});
      }
      if (was && will) {
        flush();
        after = handles_[c][r];
      }
      if (!was && will) group.push_back(r);
    }
    flush();
  }
  for (const auto& [owner, elements] : element_positions_)
    if ((disabled.count(owner) > 0) != (disabled_.count(owner) > 0))
      edit_elements(elements, disabled.count(owner) == 0, edit);
  send_edit(edit, inserted, removed);
  disabled_ = disabled;
}

void Firewall::edit_elements(const std::vector<ElementPosition>& elements, bool enabled,
                             TableEdit& edit) const {
  for (const ElementPosition& at : elements) {
    const ir::RuleMap& map = full_.maps[at.map];
    const std::vector<std::size_t>& order = map_order_[at.map];
    const bool present = std::find(order.begin(), order.end(), at.element) != order.end();
    if (present == enabled) continue;
    auto same_map = [&map](const MapEdit& e) { return e.map == map.name; };
    auto it = std::find_if(edit.maps.begin(), edit.maps.end(), same_map);
    if (it == edit.maps.end()) it = edit.maps.insert(edit.maps.end(), MapEdit{map.name, map.key, {}, {}});
    (enabled ? it->add : it->remove).push_back(map.elements[at.element]);
  }
}

// The same for one rule's kernel rules alone, found through positions_: nothing here
// walks the whole ruleset, so a toggle costs the same at 10 rules and at 10,000.
void Firewall::toggle_in_place(const std::string& name, bool enabled) {
  TableEdit edit;
  std::vector<RulePosition> inserted;
  std::vector<RulePosition> removed;
  if (auto found = positions_.find(name); found != positions_.end()) {
    std::vector<RulePosition> group;
    std::uint64_t group_after = 0;
    auto flush = [&] {
      for (const RulePosition& at : group) {
        edit.inserts.push_back(
            {full_.chains[at.chain].name, group_after, full_.chains[at.chain].rules[at.rule]});
        inserted.push_back(at);
      }
      group.clear();
    };
    for (const RulePosition& at : found->second) {  // in chain order
      std::uint64_t handle = handles_[at.chain][at.rule];
      if (!enabled) {
        if (handle != 0) {
          edit.removes.push_back({full_.chains[at.chain].name, handle});
          removed.push_back(at);
        }
        continue;
      }
      if (handle != 0) continue;
      std::uint64_t after = 0;  // the nearest loaded rule before it, 0: the chain's start
      for (std::size_t r = at.rule; r-- > 0;)
        if (handles_[at.chain][r] != 0) {
          after = handles_[at.chain][r];
          break;
        }
      if (!group.empty() && (group.back().chain != at.chain || after != group_after)) flush();
      group_after = after;
      group.push_back(at);
    }
    flush();
  }
  if (auto found = element_positions_.find(name); found != element_positions_.end())
    edit_elements(found->second, enabled, edit);
  if (!edit.removes.empty() || !edit.inserts.empty() || !edit.maps.empty())
    send_edit(edit, inserted, removed);
  if (enabled)
    disabled_.erase(name);
  else
    disabled_.insert(name);
}

void Firewall::send_edit(const TableEdit& edit, const std::vector<RulePosition>& inserted,
                         const std::vector<RulePosition>& removed) {
  std::vector<std::uint64_t> handles = kernel_.edit(full_, edit);
  for (const MapEdit& map_edit : edit.maps) {
    // Element indices by map: maps of full_ are few (a map per 128 merged rules).
    std::size_t m = 0;
    while (m < full_.maps.size() && full_.maps[m].name != map_edit.map) ++m;
    if (m == full_.maps.size()) continue;
    const std::vector<ir::MapElement>& all = full_.maps[m].elements;
    auto index_of = [&all](const ir::MapElement& element) {
      return static_cast<std::size_t>(std::find(all.begin(), all.end(), element) - all.begin());
    };
    for (const ir::MapElement& element : map_edit.remove) std::erase(map_order_[m], index_of(element));
    for (const ir::MapElement& element : map_edit.add) map_order_[m].push_back(index_of(element));
  }
  for (const RulePosition& at : removed) handles_[at.chain][at.rule] = 0;
  for (std::size_t i = 0; i < inserted.size() && i < handles.size(); ++i)
    handles_[inserted[i].chain][inserted[i].rule] = handles[i];
}

void Firewall::commit(Policy policy, RuntimeState runtime, std::string_view reason) {
  install(build(policy, runtime), reason);
  policy_ = std::move(policy);
  runtime_ = std::move(runtime);
  save_runtime();
}

void Firewall::change_runtime(RuntimeState runtime, std::string_view reason) {
  commit(policy_, std::move(runtime), reason);
}

std::string Firewall::start() {
  std::string problems;
  RuntimeState runtime;
  if (!options_.state_dir.empty()) {
    if (auto text = read_text_file(state_file("runtime.toml"))) {
      try {
        runtime = read_runtime_state(*text, state_file("runtime.toml"), tables_);
      } catch (const std::exception& failure) {
        problems += std::string("runtime changes not restored: ") + failure.what() + "\n";
      }
    }
  }

  ParsedPolicy parsed = parse_policy_file(options_.policy_path, tables_);
  problems += parsed.report();
  if (parsed.ok()) {
    try {
      commit(std::move(parsed.policy), runtime, "start");
      loaded_from_ = "policy";
      policy_file_.loaded(parsed.sources);
      save_last_good(policy_);
      return problems;
    } catch (const std::exception& failure) {
      problems += failure.what();
      problems += '\n';
    }
  }
  if (!options_.state_dir.empty()) {
    ParsedPolicy last_good = parse_policy_file(state_file("last-good.toml"), tables_);
    if (last_good.ok()) {
      try {
        commit(std::move(last_good.policy), runtime, "start");
        loaded_from_ = "last-good";
        file_differs_ =
            "it could not be loaded at start, portierd's log says why, so the last good policy "
            "is loaded; a restart tries the file again, and so does reload";
        return problems + "loaded the last good policy from " + state_file("last-good.toml") + "\n";
      } catch (const std::exception& failure) {
        problems += failure.what();
        problems += '\n';
      }
    }
  }
  // Nothing usable: keep the host closed to new inbound connections rather than open.
  Policy fail_closed;
  fail_closed.source = "(built-in fail-closed policy)";
  commit(fail_closed, RuntimeState{}, "start");
  loaded_from_ = "fail-closed";
  file_differs_ =
      "neither it nor a last good policy could be loaded at start, so the built-in fail-closed "
      "policy is loaded; a restart tries the file again, and so does reload";
  return problems + "loaded the built-in fail-closed policy: new inbound connections are dropped\n";
}

void Firewall::reload() {
  if (pending_)
    throw InvalidRequest("an apply is waiting for confirmation: confirm or roll back first");
  ParsedPolicy parsed = parse_policy_file(options_.policy_path, tables_);
  if (!parsed.ok()) throw PolicyError(parsed.report());
  RuntimeState runtime = runtime_;
  // Forget toggles of rules the new policy no longer has.
  std::erase_if(runtime.toggles,
                [&](const auto& toggle) { return !is_toggleable(parsed.policy, toggle.first); });
  commit(std::move(parsed.policy), std::move(runtime), "reload");
  loaded_from_ = "policy";
  policy_file_.loaded(parsed.sources);
  file_differs_.clear();
  save_last_good(policy_);
}

void Firewall::set_rule_enabled(const std::string& name, bool enabled, bool permanent) {
  const bool timed = std::any_of(runtime_.timed_rules.begin(), runtime_.timed_rules.end(),
                                 [&](const TimedRule& t) { return t.rule.name == name; });
  if (timed && !is_toggleable(policy_, name)) {
    // A timed rule (`portierctl allow`) is on until it ends: disabling it ends it now.
    if (enabled) throw InvalidRequest("timed rule '" + name + "' is on until it ends");
    if (permanent)
      throw InvalidRequest("timed rule '" + name + "' is not in the policy file");
    remove_timed_rule(name);
    if (events_) events_->rule_changed(name, false);
    return;
  }
  if (!is_toggleable(policy_, name))
    throw NoSuchRule("no rule or forward named '" + name + "' in the policy");
  if (permanent) {
    if (!file_differs_.empty() || pending_)
      throw InvalidRequest(
          "the policy in force is not the policy file: cannot edit it permanently");
    edit_enabled_in_file(name, enabled);
    RuntimeState runtime = runtime_;
    runtime.toggles.erase(name);
    ParsedPolicy parsed = parse_policy_file(options_.policy_path, tables_);
    if (!parsed.ok()) throw PolicyError(parsed.report());
    commit(std::move(parsed.policy), std::move(runtime), "toggle");
    policy_file_.loaded(parsed.sources);
    save_last_good(policy_);
  } else if (kernel_has_full_ && !runtime_.panic) {
    // Nothing else changes: no recompile, only this rule's kernel rules.
    toggle_in_place(name, enabled);
    runtime_.toggles[name] = enabled;
    save_runtime();
    applied("toggle");
  } else {
    RuntimeState runtime = runtime_;
    runtime.toggles[name] = enabled;
    change_runtime(std::move(runtime), "toggle");
  }
  if (events_) events_->rule_changed(name, enabled);
}

// Edits the one `enabled` line of the rule in its file, or adds one under its name,
// leaving every other byte (comments, layout) as it was.
void Firewall::edit_enabled_in_file(const std::string& name, bool enabled) {
  SourceLocation where;
  if (const Rule* rule = policy_.find_rule(name)) where = rule->where;
  for (const Forward& forward : policy_.forwards)
    if (forward.name == name) where = forward.where;
  auto text = read_text_file(where.file);
  if (!text) throw InvalidRequest("cannot read " + where.file);
  toml::table document = toml::parse(*text, where.file);
  const toml::table* entry = nullptr;
  for (const char* key : {"rule", "forward"})
    if (const toml::array* array = document[key].as_array())
      for (const toml::node& node : *array)
        if (const toml::table* table = node.as_table();
            table && (*table)["name"].value<std::string>() == name)
          entry = table;
  if (!entry) throw InvalidRequest("cannot find '" + name + "' in " + where.file);

  std::vector<std::string> lines;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const std::string value = enabled ? "true" : "false";
  if (const toml::node* node = entry->get("enabled")) {
    std::string& line = lines.at(node->source().begin.line - 1);
    std::size_t column = node->source().begin.column - 1;
    std::size_t length = line.compare(column, 4, "true") == 0 ? 4 : 5;
    line.replace(column, length, value);
  } else {
    const toml::node* name_node = entry->get("name");
    std::size_t after = name_node->source().begin.line;  // 1-based line of name = index after it
    const std::string& name_line = lines.at(after - 1);
    std::string indent = name_line.substr(0, name_line.find_first_not_of(" \t"));
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(after), indent + "enabled = " + value);
  }
  std::string edited;
  for (const std::string& line : lines) edited += line + "\n";
  if (!text->empty() && text->back() != '\n') edited.pop_back();
  write_file_atomically(where.file, edited);
}

std::uint64_t Firewall::apply_file(const std::string& path,
                                   std::optional<std::chrono::seconds> confirm) {
  if (pending_) throw InvalidRequest("an apply is already waiting for confirmation");
  if (runtime_.panic)
    throw InvalidRequest("panic mode is on: turn it off before applying a policy");
  ParsedPolicy parsed = parse_policy_file(path, tables_);
  if (!parsed.ok()) throw PolicyError(parsed.report());
  auto text = parsed.sources.at(path);
  // Once installed, the applied file's text is the policy file's.
  auto sources = parsed.sources;
  if (path != options_.policy_path) {
    auto applied = sources.extract(path);
    applied.key() = options_.policy_path;
    sources.insert(std::move(applied));
  }
  Policy previous = policy_;
  commit(std::move(parsed.policy), runtime_, "apply");
  if (confirm) {
    pending_ = PendingApply{.previous = std::move(previous),
                            .path = path,
                            .text = std::move(text),
                            .sources = std::move(sources),
                            .deadline = options_.now() + *confirm,
                            .file_differs = file_differs_};
    if (events_) events_->confirm_pending(static_cast<std::uint32_t>(confirm->count()));
  } else {
    if (path != options_.policy_path) install_policy_file(text);
    loaded_from_ = "policy";
    policy_file_.loaded(sources);
    file_differs_.clear();
    save_last_good(policy_);
  }
  return generation_;
}

void Firewall::confirm() {
  if (!pending_) throw NotPending("no apply is waiting for confirmation");
  if (pending_->path != options_.policy_path) install_policy_file(pending_->text);
  policy_file_.loaded(pending_->sources);
  file_differs_.clear();
  pending_.reset();
  loaded_from_ = "policy";
  save_last_good(policy_);
}

void Firewall::install_policy_file(const std::string& text) {
  auto before = read_text_file(options_.policy_path);
  if (before && *before != text) policy_file_.replacing(*before, text);
  write_file_atomically(options_.policy_path, text);
}

// The last apply (confirmed, or without --confirm) replaced the policy file: it goes back
// whole, comments and all, and is loaded from there, so the kernel and the file agree and
// a restart loads what the rollback chose.
bool Firewall::roll_back_policy_file() {
  std::optional<std::string> before = policy_file_.replaced_text();
  if (!before) return false;
  std::optional<std::string> applied = read_text_file(options_.policy_path);
  write_file_atomically(options_.policy_path, *before);
  try {
    ParsedPolicy parsed = parse_policy_file(options_.policy_path, tables_);
    if (!parsed.ok()) throw PolicyError(parsed.report());
    commit(std::move(parsed.policy), runtime_, "rollback");
    policy_file_.loaded(parsed.sources);
  } catch (const std::exception& failure) {
    // It no longer loads (a cgroup it names is gone, say): the applied file stays, and the
    // previous good policy is loaded without it.
    std::fprintf(stderr,
                 "portierd: the policy file before the last apply does not load any more, "
                 "rolling back to the previous good policy alone: %s\n",
                 failure.what());
    if (applied) write_file_atomically(options_.policy_path, *applied);
    return false;
  }
  policy_file_.forget_replaced();
  loaded_from_ = "last-good";  // the policy before the last, as without a file to put back
  file_differs_.clear();
  save_last_good(policy_);  // a later start with a broken file falls back to it, too
  return true;
}

void Firewall::finish_pending(std::string_view reason) {
  commit(pending_->previous, runtime_, "rollback");
  file_differs_ = pending_->file_differs;  // the file was left as it was
  pending_.reset();
  if (events_) events_->rolled_back(reason);
}

void Firewall::rollback() {
  if (pending_) {
    finish_pending("rollback requested");
    return;
  }
  if (roll_back_policy_file()) {
    if (events_) events_->rolled_back("rollback to the previous good policy");
    return;
  }
  ParsedPolicy previous = parse_policy_file(state_file("previous-good.toml"), tables_);
  if (options_.state_dir.empty() || !previous.ok())
    throw NotPending("nothing to roll back to: no apply is pending and no previous policy is kept");
  commit(std::move(previous.policy), runtime_, "rollback");
  loaded_from_ = "last-good";
  file_differs_ =
      "a rollback loaded the previous good policy, and the file still holds the policy in "
      "force before it, as the last apply did not write the file or it was edited since; a "
      "restart or reload loads the file";
  if (events_) events_->rolled_back("rollback to the previous good policy");
}

std::string Firewall::add_timed_rule(const TimedRuleRequest& request) {
  if (request.duration.count() <= 0 || request.duration > kMaxTimedRule)
    throw InvalidRequest("duration must be from 1 second to 30 days");
  std::string name = "timed-" + std::to_string(runtime_.next_timed_id);
  toml::table rule{{"name", name}, {"direction", request.direction}, {"action", request.action}};
  auto list = [](const std::vector<std::string>& items) {
    toml::array array;
    for (const std::string& item : items) array.push_back(item);
    return array;
  };
  if (!request.protocols.empty()) rule.insert("protocols", list(request.protocols));
  if (!request.ports.empty()) rule.insert("ports", list(request.ports));
  if (!request.from.empty()) rule.insert("from", list(request.from));
  if (!request.to.empty()) rule.insert("to", list(request.to));
  std::ostringstream text;
  text << toml::toml_formatter{toml::table{{"rule", toml::array{rule}}}} << "\n";
  ParsedPolicy parsed = parse_policy_fragment(text.str(), "timed rule", tables_);
  if (parsed.ok() && parsed.policy.rules.size() == 1) {
    // Its zones and sets must exist in the policy it joins.
    Policy joined = policy_;
    joined.rules.push_back(parsed.policy.rules[0]);
    for (const Diagnostic& diagnostic : validate_policy(joined))
      if (diagnostic.severity == Severity::error && diagnostic.where.file == "timed rule")
        parsed.diagnostics.push_back(diagnostic);
  }
  if (!parsed.ok()) throw InvalidRequest(parsed.report());
  RuntimeState runtime = runtime_;
  runtime.timed_rules.push_back(
      {parsed.policy.rules[0], text.str(), options_.now() + request.duration});
  ++runtime.next_timed_id;
  change_runtime(std::move(runtime), "timed-rule");
  return name;
}

void Firewall::remove_timed_rule(const std::string& name) {
  RuntimeState runtime = runtime_;
  if (std::erase_if(runtime.timed_rules, [&](const TimedRule& t) { return t.rule.name == name; }) ==
      0)
    throw NoSuchRule("no timed rule named '" + name + "'");
  change_runtime(std::move(runtime), "timed-rule");
}

void Firewall::set_panic(bool on, bool keep_established) {
  RuntimeState runtime = runtime_;
  runtime.panic = on;
  runtime.panic_keep_established = on && keep_established;
  change_runtime(std::move(runtime), on ? "panic" : "panic-off");
}

// Check parses text from any caller, and portierd runs as root: a set's `file` would be read
// as root and its lines quoted back as "not a valid element" (the first lines of
// /etc/shadow), or /dev/zero read until memory runs out. So a check over the bus reads no
// file: a text naming one gets this error alone, and is not parsed further (parse_policy
// could read it from half of a text whose other half is broken).
ParsedPolicy Firewall::check(const std::string& text, const std::string& file_name) const {
  ParsedPolicy refused;
  refused.sources.emplace(file_name, text);
  toml::table document;
  try {
    document = toml::parse(text, file_name);
  } catch (const toml::parse_error& failure) {
    const toml::source_position& at = failure.source().begin;
    refused.diagnostics.push_back(
        {Severity::error,
         {file_name, static_cast<int>(at.line), static_cast<int>(at.column)},
         std::string(failure.description())});
    return refused;
  }
  if (const toml::table* sets = document["set"].as_table()) {
    for (const auto& entry : *sets) {
      const toml::table* set = entry.second.as_table();
      const toml::node* file = set ? set->get("file") : nullptr;
      if (!file) continue;
      const toml::source_position& at = file->source().begin;
      refused.diagnostics.push_back(
          {Severity::error,
           {file_name, static_cast<int>(at.line), static_cast<int>(at.column)},
           "set files are not read in a check sent to portierd (it would read them as root for "
           "anyone); check the policy file itself: portierctl check FILE"});
      return refused;
    }
  }
  return parse_policy(text, file_name, tables_);
}

// The kernel's element of `set` for one element as the user wrote it.
static ir::AddressRange element_range(const NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) {
    auto port = static_cast<std::uint16_t>(std::stoul(element));
    return {ir::port_element(port), ir::port_element(port)};
  }
  return to_range(*parse_cidr(element));
}

bool Firewall::edit_set_in_place(const NamedSet& set, const std::vector<std::string>& add,
                                 const std::vector<std::string>& remove,
                                 std::optional<std::chrono::seconds> timeout) {
  if (!kernel_has_full_ || runtime_.panic) return false;
  // An address set is two kernel sets (compile_policy): single addresses in a hash set,
  // networks in an interval set. Each element goes to the one it belongs in.
  auto target = [&](const ir::AddressRange& range) {
    bool single = set.family != SetFamily::port && range.first == range.last;
    return single ? host_set_name(set.name) : set.name;
  };
  std::map<std::string, SetEdit> edits;
  auto edit_of = [&](const std::string& name) -> SetEdit* {
    auto loaded = std::find_if(full_.sets.begin(), full_.sets.end(),
                               [&](const ir::NamedSet& s) { return s.name == name; });
    if (loaded == full_.sets.end()) return nullptr;
    auto [it, inserted] =
        edits.try_emplace(name, SetEdit{name, loaded->key, loaded->interval, {}, {}, std::nullopt});
    if (inserted && timeout)
      it->second.timeout_seconds = static_cast<std::uint32_t>(timeout->count());
    return &it->second;
  };
  for (const std::string& element : add) {
    ir::AddressRange range = element_range(set, element);
    SetEdit* edit = edit_of(target(range));
    if (!edit) return false;
    edit->add.push_back(range);
  }
  for (const std::string& element : remove) {
    ir::AddressRange range = element_range(set, element);
    SetEdit* edit = edit_of(target(range));
    if (!edit) return false;
    edit->remove.push_back(range);
  }
  for (auto& [name, edit] : edits) {
    try {
      kernel_.edit_set(full_.table, edit);
    } catch (const KernelError& refused) {
      // An element overlapping one the kernel has, or one removed from inside a larger
      // range: the whole set is loaded anew instead, which always works.
      std::fprintf(stderr, "portierd: set %s changed by reloading it: %s\n", set.name.c_str(),
                   refused.what());
      return false;
    }
    ir::NamedSet& loaded =
        *std::find_if(full_.sets.begin(), full_.sets.end(),
                      // clang 14 cannot capture a structured binding
                      [&set_name = name](const ir::NamedSet& s) { return s.name == set_name; });
    // Our record of the kernel's set: finding one element in a vector of a million is a
    // scan, so removed ones are only marked, and taken out together later.
    RemovedElements& removed = removed_elements_[name];
    for (const ir::AddressRange& range : edit.remove) removed.insert(range);
    for (const ir::AddressRange& range : edit.add)
      if (removed.erase(range) == 0) loaded.elements.push_back(range);  // else: still there
    if (removed.size() > std::max<std::size_t>(4096, loaded.elements.size() / 4))
      take_out_removed();
  }
  return true;
}

std::size_t Firewall::RangeHash::operator()(const ir::AddressRange& range) const {
  std::string_view first(reinterpret_cast<const char*>(range.first.bytes.data()),
                         range.first.bytes.size());
  std::string_view last(reinterpret_cast<const char*>(range.last.bytes.data()),
                        range.last.bytes.size());
  return std::hash<std::string_view>()(first) * 31 + std::hash<std::string_view>()(last) +
         static_cast<std::size_t>(range.first.family);
}

void Firewall::take_out_removed() {
  for (ir::NamedSet& set : full_.sets) take_out_removed(set);
  removed_elements_.clear();
}

void Firewall::take_out_removed(ir::NamedSet& set) const {
  auto removed = removed_elements_.find(set.name);
  if (removed == removed_elements_.end() || removed->second.empty()) return;
  std::erase_if(set.elements,
                [&](const ir::AddressRange& range) { return removed->second.count(range) > 0; });
}

ir::Ruleset Firewall::loaded_ruleset() const {
  ir::Ruleset loaded = without_owners(full_, disabled_);
  for (ir::NamedSet& set : loaded.sets) take_out_removed(set);
  for (std::size_t m = 0; m < loaded.maps.size() && m < map_order_.size(); ++m) {
    loaded.maps[m].elements.clear();
    for (std::size_t e : map_order_[m]) loaded.maps[m].elements.push_back(full_.maps[m].elements[e]);
  }
  return loaded;
}

// The element as portierd lists it, so that one element written two ways is one element.
static std::string canonical_element(const NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) return std::to_string(std::stoul(element));
  return to_string(*parse_cidr(element));
}

Firewall::SetChange Firewall::set_change(const NamedSet& set,
                                         const std::vector<std::string>& elements, bool add) const {
  SetChange change;
  std::unordered_set<std::string> seen;
  for (const std::string& element : elements)
    if (std::string canonical = canonical_element(set, element); seen.insert(canonical).second)
      change.elements.push_back(std::move(canonical));
  // What the set holds now: the policy's own elements less those removed at run time,
  // and those added at run time. One pass over each (a set may hold a million).
  std::unordered_set<std::string_view> wanted(change.elements.begin(), change.elements.end());
  std::unordered_set<ir::AddressRange, RangeHash> wanted_ranges;
  for (const std::string& element : change.elements)
    wanted_ranges.insert(element_range(set, element));
  auto policy_has = [&](const ir::AddressRange& range) {
    if (wanted_ranges.count(range)) change.in_policy.insert(range);
  };
  if (set.family == SetFamily::port) {
    for (const PortRange& ports : set.ports)
      policy_has({ir::port_element(ports.first), ir::port_element(ports.last)});
  } else {
    for (const Cidr& cidr : set.addresses) policy_has(to_range(cidr));
  }
  std::unordered_set<std::string_view> added, removed;
  for (const RuntimeElement& e : runtime_.added_elements)
    if (e.set == set.name && wanted.count(e.element)) added.insert(e.element);
  for (const RuntimeElement& e : runtime_.removed_elements)
    if (e.set == set.name && wanted.count(e.element)) removed.insert(e.element);
  std::vector<std::string> changing;
  for (std::string& element : change.elements) {
    bool present = added.count(element) ||
                   (change.in_policy.count(element_range(set, element)) && !removed.count(element));
    // Adding what is there, or removing what is not, changes nothing (as `nft add
    // element` of one the set has); only the others go to the kernel and the record.
    if (present != add) changing.push_back(std::move(element));
  }
  change.elements = std::move(changing);
  return change;
}

void Firewall::add_set_elements(const std::string& set_name,
                                const std::vector<std::string>& elements,
                                std::optional<std::chrono::seconds> timeout) {
  const NamedSet* set = policy_.find_set(set_name);
  if (!set) throw NoSuchSet("no set named '" + set_name + "' in the policy");
  if (elements.empty() || elements.size() > kMaxElementsPerCall)
    throw InvalidRequest("give 1 to 1000000 elements per call");
  if (timeout && !set->timeout)
    throw InvalidRequest("set '" + set_name +
                         "' has no timeout: give it `timeout = ...` in the policy");
  if (set->timeout && !timeout) timeout = set->timeout;
  std::optional<Clock::time_point> expires;
  if (timeout) expires = options_.now() + *timeout;
  for (const std::string& element : elements)
    if (!element_fits(*set, element))
      throw InvalidRequest("'" + element + "' is not an element of set '" + set_name + "' (" +
                           (set->family == SetFamily::port   ? "ports"
                            : set->family == SetFamily::ipv4 ? "ipv4"
                                                             : "ipv6") +
                           ")");
  SetChange change = set_change(*set, elements, true);
  // A call that changes nothing is still answered only once the state it found is on
  // disk: an earlier call may have made it and still wait for its write.
  if (change.elements.empty()) return save_runtime();
  auto record = [&](RuntimeState& runtime) {
    // One pass with a lookup table, not a search per element: calls carry up to a million.
    std::unordered_set<std::string_view> adding(change.elements.begin(), change.elements.end());
    std::erase_if(runtime.removed_elements, [&](const RuntimeElement& e) {
      return e.set == set_name && adding.count(e.element) > 0;
    });
    // The policy's own elements are back once no longer recorded as removed.
    for (const std::string& element : change.elements)
      if (!change.in_policy.count(element_range(*set, element)))
        runtime.added_elements.push_back({set_name, element, expires});
  };
  // In place, the runtime record is changed without a copy: it may hold a million elements.
  if (edit_set_in_place(*set, change.elements, {}, timeout)) {
    record(runtime_);
    save_runtime();
    applied("set-elements");
  } else {
    RuntimeState runtime = runtime_;
    record(runtime);
    change_runtime(std::move(runtime), "set-elements");
  }
}

void Firewall::remove_set_elements(const std::string& set_name,
                                   const std::vector<std::string>& elements) {
  const NamedSet* set = policy_.find_set(set_name);
  if (!set) throw NoSuchSet("no set named '" + set_name + "' in the policy");
  if (elements.empty() || elements.size() > kMaxElementsPerCall)
    throw InvalidRequest("give 1 to 1000000 elements per call");
  for (const std::string& element : elements)
    if (!element_fits(*set, element))
      throw InvalidRequest("'" + element + "' is not an element of set '" + set_name + "'");
  SetChange change = set_change(*set, elements, false);
  if (change.elements.empty()) return save_runtime();  // as in add_set_elements
  auto record = [&](RuntimeState& runtime) {
    // Elements added at run time just go; the policy's own are recorded as removed (an
    // element can be both: added at run time, then a reload brought a policy that has it).
    std::unordered_set<std::string_view> removing(change.elements.begin(), change.elements.end());
    std::erase_if(runtime.added_elements, [&](const RuntimeElement& e) {
      return e.set == set_name && removing.count(e.element) > 0;
    });
    for (const std::string& element : change.elements)
      if (change.in_policy.count(element_range(*set, element)))
        runtime.removed_elements.push_back({set_name, element, std::nullopt});
  };
  if (edit_set_in_place(*set, {}, change.elements, std::nullopt)) {
    record(runtime_);
    save_runtime();
    applied("set-elements");
  } else {
    RuntimeState runtime = runtime_;
    record(runtime);
    change_runtime(std::move(runtime), "set-elements");
  }
}

std::vector<std::string> Firewall::list_set_elements(const std::string& set_name) const {
  Policy in_force = effective(policy_, runtime_);
  const NamedSet* set = in_force.find_set(set_name);
  if (!set) throw NoSuchSet("no set named '" + set_name + "' in the policy");
  std::vector<std::string> result;
  std::size_t count = set->family == SetFamily::port ? set->ports.size() : set->addresses.size();
  for (std::size_t i = 0; i < count; ++i) result.push_back(format_element(*set, i));
  return result;
}

std::optional<Clock::time_point> Firewall::next_deadline() const {
  std::optional<Clock::time_point> next;
  auto consider = [&](Clock::time_point t) {
    if (!next || t < *next) next = t;
  };
  for (const TimedRule& timed : runtime_.timed_rules) consider(timed.expires);
  for (const RuntimeElement& element : runtime_.added_elements)
    if (element.expires) consider(*element.expires);
  if (pending_) consider(pending_->deadline);
  return next;
}

void Firewall::on_timer() {
  Clock::time_point now = options_.now();
  if (pending_ && now >= pending_->deadline) {
    finish_pending("not confirmed in time");
    std::fprintf(stderr, "portierd: apply not confirmed in time: rolled back (generation %llu)\n",
                 static_cast<unsigned long long>(generation_));
  }
  RuntimeState runtime = runtime_;
  auto expired_rules =
      std::erase_if(runtime.timed_rules, [&](const TimedRule& t) { return t.expires <= now; });
  // The kernel expires timed set elements by itself; only the record of them goes.
  auto expired_elements = std::erase_if(runtime.added_elements, [&](const RuntimeElement& e) {
    return e.expires && *e.expires <= now;
  });
  if (expired_rules > 0) {
    change_runtime(std::move(runtime), "expiry");
  } else if (expired_elements > 0) {
    runtime_ = std::move(runtime);
    save_runtime();
  }
}

void Firewall::repair_drift(const std::string& what) {
  std::fprintf(stderr, "portierd: table changed from outside (%s): loading it again\n",
               what.c_str());
  kernel_has_full_ = false;  // whatever the kernel has now, load ours whole
  take_out_removed();
  install(Built{full_, disabled_}, "drift-repair");
}

void Firewall::save_runtime() {
  if (options_.state_dir.empty()) return;
  runtime_unsaved_ = true;
  ++state_generation_;
}

void Firewall::flush_state() {
  if (!runtime_unsaved_) return;
  runtime_unsaved_ = false;
  if (!state_writer_) state_writer_ = std::make_unique<StateWriter>(state_file("runtime.toml"));
  state_writer_->post(write_runtime_state(runtime_), state_generation_);
}

int Firewall::state_fd() const { return state_writer_ ? state_writer_->fd() : -1; }

std::vector<StateWriter::Outcome> Firewall::take_state_outcomes() {
  return state_writer_ ? state_writer_->take_outcomes() : std::vector<StateWriter::Outcome>{};
}

void Firewall::release_memory() {
  // Parsing, compiling and encoding a big policy, and writing the last good copy, leave
  // megabytes of freed heap behind that malloc keeps: once per whole load, after the
  // reply, a long-running daemon gives them back.
  if (!heap_to_trim_) return;
  heap_to_trim_ = false;
  ::malloc_trim(0);
}

void Firewall::wait_for_state() {
  flush_state();
  if (state_writer_) state_writer_->wait_until_written();
}

Firewall::~Firewall() { flush_state(); }  // state_writer_'s destructor writes it

// The last policy the kernel accepted, self-contained, for a later start whose file is
// broken; the one before it stays as previous-good.toml for `portierctl rollback`.
void Firewall::save_last_good(const Policy& policy) const {
  if (options_.state_dir.empty()) return;
  try {
    std::string text = write_policy(policy);
    std::string last = state_file("last-good.toml");
    if (auto old = read_text_file(last); old && *old != text)
      write_file_atomically(state_file("previous-good.toml"), *old);
    write_file_atomically(last, text);
  } catch (const std::exception& failure) {
    // The new ruleset is in force; only the fallback copy for a later start is stale.
    std::fprintf(stderr, "portierd: warning: last good policy not saved: %s\n", failure.what());
  }
}

Mode Firewall::mode() const {
  if (runtime_.panic) return Mode::panic;
  if (pending_) return Mode::pending_confirm;
  return Mode::normal;
}

std::vector<RuleStatus> Firewall::rules() const {
  // A policy rule may be several kernel rules (zones, address families): add them up.
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> counters;
  std::vector<std::string> maps;
  for (const ir::RuleMap& map : full_.maps) maps.push_back(map.name);
  for (const RuleCounter& counter : kernel_.read_counters(full_.table, maps)) {
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
  Policy in_force = effective(policy_, runtime_);
  std::vector<RuleStatus> result;
  for (const Rule& rule : in_force.rules) {
    std::string match = describe_match(rule);
    for (const TimedRule& timed : runtime_.timed_rules)
      if (timed.rule.name == rule.name)
        match += " for " +
                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timed.expires -
                                                                                 options_.now())
                                    .count()) +
                 "s";
    result.push_back(counted({rule.name, rule.enabled, std::string(to_string(rule.direction)),
                              std::string(to_string(rule.action)), match, 0, 0}));
  }
  for (const Forward& forward : in_force.forwards)
    result.push_back(counted(
        {forward.name, forward.enabled, "forward", "dnat", describe_forward(forward), 0, 0}));
  return result;
}

FirewallStatus Firewall::status() const {
  FirewallStatus status;
  status.policy_path = options_.policy_path;
  status.table = full_.table;
  // Counted from the policy and the toggles: copying the policy in force would copy its
  // sets too, and this runs after every change (sd_notify STATUS=).
  auto enabled = [&](const std::string& name, bool in_file) {
    return enabled_now(runtime_, name, in_file);
  };
  status.rules = policy_.rules.size() + runtime_.timed_rules.size() + policy_.forwards.size();
  for (const Rule& rule : policy_.rules)
    status.rules_enabled += enabled(rule.name, rule.enabled) ? 1 : 0;
  for (const TimedRule& timed : runtime_.timed_rules)
    status.rules_enabled += timed.rule.enabled ? 1 : 0;
  for (const Forward& forward : policy_.forwards)
    status.rules_enabled += enabled(forward.name, forward.enabled) ? 1 : 0;
  status.timed_rules = runtime_.timed_rules.size();
  status.generation = generation_;
  status.last_applied = last_applied_;
  status.mode = mode();
  if (pending_) status.confirm_deadline = pending_->deadline;
  status.loaded_from = loaded_from_;
  if (pending_)
    status.policy_file_differs =
        pending_->path == options_.policy_path
            ? "an apply of it is waiting for confirmation; the file already holds it, so a "
              "restart loads it unconfirmed"
            : "an apply of " + pending_->path +
                  " is waiting for confirmation; the file holds the policy before it, which a "
                  "rollback or a restart loads; confirm installs the new one as the file";
  else if (!file_differs_.empty())
    status.policy_file_differs = file_differs_;
  else if (auto edited = policy_file_.edited_since_loaded())
    status.policy_file_differs =
        *edited + " changed since it was loaded: reload loads it, and so would a restart";
  for (const NamedSet& set : policy_.sets) {
    status.sets.push_back(set.name);
    status.set_families[set.name] = set.family == SetFamily::port   ? "port"
                                    : set.family == SetFamily::ipv4 ? "ipv4"
                                                                    : "ipv6";
  }
  for (const ir::NamedSet& set : full_.sets)
    if (set.key == ir::SetKey::cgroupv2) status.owners.push_back(owner_status(set));
  return status;
}

bool Firewall::follow_cgroups() {
  if (!kernel_has_full_) return false;
  std::vector<CgroupChange> changes = bound_.changes(full_);
  if (changes.empty()) return false;
  bool reload_whole = false;
  for (const CgroupChange& change : changes) {
    SetEdit edit{change.set, ir::SetKey::cgroupv2, false, {}, {}, std::nullopt};
    for (const ir::CgroupMember& member : change.before)
      edit.remove.push_back(ir::cgroup_element(member.id));
    for (const ir::CgroupMember& member : change.after)
      edit.add.push_back(ir::cgroup_element(member.id));
    try {
      kernel_.edit_set(full_.table, edit);
    } catch (const KernelError& refused) {
      // The kernel's set is not what we think it holds: load the table whole instead.
      std::fprintf(stderr, "portierd: set %s changed by reloading the table: %s\n",
                   change.set.c_str(), refused.what());
      reload_whole = true;
    }
    for (ir::NamedSet& set : full_.sets)
      if (set.name == change.set) set.cgroups = change.after;
  }
  if (reload_whole) {
    kernel_has_full_ = false;
    install(Built{full_, disabled_}, "cgroups");
  }
  bound_.loaded(full_);
  for (const CgroupChange& change : changes) {
    const ir::NamedSet* set = nullptr;
    for (const ir::NamedSet& candidate : full_.sets)
      if (candidate.name == change.set) set = &candidate;
    if (!set) continue;
    OwnerStatus owner = owner_status(*set);
    if (owner.cgroup)
      std::fprintf(stderr, "portierd: %s %s: %s started (cgroup id %llu)\n", owner.kind.c_str(),
                   owner.name.c_str(), owner.owner.c_str(),
                   static_cast<unsigned long long>(owner.cgroup->id));
    else
      std::fprintf(stderr, "portierd: %s %s: %s stopped: nobody may serve its ports until it runs\n",
                   owner.kind.c_str(), owner.name.c_str(), owner.owner.c_str());
    if (events_) events_->owner_changed(owner);
  }
  return true;
}

OwnerStatus Firewall::owner_status(const ir::NamedSet& set) const {
  OwnerStatus status;
  status.name = owner_of_cgroup_set(set.name);
  status.kind = policy_.find_rule(status.name) ? "rule" : "bind";
  status.owner = describe(set.owner);
  if (!set.cgroups.empty()) status.cgroup = set.cgroups.front();
  status.since = bound_.since(set.name);
  return status;
}

NeighboursSeen Firewall::neighbours_seen(const std::vector<std::string>& interfaces) const {
  return portier::neighbours_seen(policy_, interfaces);
}

std::string Firewall::ruleset_text() const { return render_nft(loaded_ruleset()); }

}  // namespace portier
