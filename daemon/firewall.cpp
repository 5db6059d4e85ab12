#include "firewall.h"

#include <algorithm>
#include <cerrno>
#include <map>
#include <tuple>
#include <unordered_set>

#include "heap.h"
#include "log.h"
#include "neighbours.h"
#include "parse_untrusted.h"
#include "render_nft.h"
#include "set_elements.h"
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

std::string_view to_string(LoadSource source) {
  switch (source) {
    case LoadSource::policy:
      return "policy";
    case LoadSource::last_good:
      return "last-good";
    case LoadSource::fail_closed:
      return "fail-closed";
  }
  return "?";
}

Firewall::Firewall(Kernel& kernel, FirewallOptions options, SystemTables tables)
    : kernel_(kernel),
      options_(std::move(options)),
      own_state_(!options_.state && !options_.state_dir.empty()
                     ? std::make_unique<StateDirectory>(options_.state_dir)
                     : nullptr),
      state_(options_.state ? options_.state : own_state_.get()),
      bound_(options_.cgroups, options_.now),
      tables_(std::move(tables)),
      policy_file_(options_.policy_path, state_) {}

ParsedPolicy Firewall::parse_kept_policy(StateFile file) const {
  if (state_) state_->wait_for_last_good();  // the copies as the last load left them
  std::optional<std::string> text = state_ ? state_->read(file) : std::nullopt;
  if (!text) {
    // Built apart, not in a braced temporary: GCC 12 at -O3 warns falsely there
    // (-Wmaybe-uninitialized; see read_text() in rules/parse_policy.cpp).
    Diagnostic missing;
    missing.severity = Severity::error;
    missing.where.file = state_ ? state_->name(file) : std::string();
    missing.message = "cannot read policy";
    ParsedPolicy none;
    none.diagnostics.push_back(std::move(missing));
    return none;
  }
  return parse_policy(*text, state_->name(file), tables_);
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
  // Compiled with everything enabled: toggles then only add or remove kernel rules.
  CompileOptions whole = options_.compile;
  whole.leave_out_disabled = false;
  if (runtime.timed_rules.empty() && runtime.added_elements.empty() &&
      runtime.removed_elements.empty()) {
    // Toggles at most: the policy compiles as it is, without effective()'s copy of it (a
    // 10,000-rule policy is megabytes, which a reload after the heap decay faults in).
    for (const Rule& rule : policy.rules)
      if (!enabled_now(runtime, rule.name, rule.enabled)) built.disabled.insert(rule.name);
    for (const Forward& forward : policy.forwards)
      if (!enabled_now(runtime, forward.name, forward.enabled)) built.disabled.insert(forward.name);
    built.full = compile_policy(policy, whole);
  } else {
    const Policy in_force = effective(policy, runtime);
    built.disabled = disabled_names(in_force);
    built.full = compile_policy(in_force, whole);
  }
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
// replacement of the table's contents (or of the table) in one transaction.
void Firewall::install(Built built, std::string_view reason) {
  if (table_.holds(built.full)) {
    if (built.disabled != table_.disabled()) {
      LoadedTable::Change change = table_.leave_out(std::move(built.disabled));
      std::vector<std::uint64_t> handles = kernel_.edit(table_.full(), change.edit);
      table_.made(std::move(change), handles);
      applied(reason);
    }
    return;
  }
  RuleHandles loaded;
  try {
    loaded = replace_table(without_owners(built.full, built.disabled));
  } catch (const KernelError& refused) {
    // Kernels before 5.12 (owner) or 6.9 (persist) refuse the flags: go on without them.
    std::string what = refused.what();
    bool flags_refused = built.full.owner && refused.object() == KernelObject::table &&
                         (refused.error() == EOPNOTSUPP || refused.error() == EINVAL);
    if (!flags_refused) throw;
    log_line("the kernel refused an owned, persistent table (" + what + "): loading it without");
    options_.compile.owner = false;
    built.full.owner = built.full.persist = false;
    loaded = kernel_.apply(without_owners(built.full, built.disabled));
  }
  table_.load(std::move(built.full), std::move(built.disabled), loaded);
  bound_.loaded(table_.full());
  applied(reason);
  ++whole_loads_;
}

// Over a table known to hold table_.full(), its contents are replaced and its base chains
// stay hooked (Kernel::refill); otherwise the table is replaced whole.
RuleHandles Firewall::replace_table(const ir::Ruleset& next) {
  if (!table_.loaded()) return kernel_.apply(next);
  try {
    return kernel_.refill(table_.full(), next);
  } catch (const KernelError& refused) {
    // The table may not hold what we recorded (someone changed it, and the change has not
    // been noticed yet): a whole replacement does not depend on what it holds. A ruleset
    // the kernel refuses is refused again, with the same error.
    log_line(std::string("the table could not be refilled in place (") + refused.what() +
             "): replacing it whole");
    return kernel_.apply(next);
  }
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
  if (state_) {
    if (auto text = state_->read(StateFile::runtime)) {
      try {
        runtime = read_runtime_state(*text, state_->name(StateFile::runtime), tables_);
      } catch (const std::exception& failure) {
        problems += std::string("runtime changes not restored: ") + failure.what() + "\n";
      }
    }
  }

  ParsedPolicy parsed = read_policy_file();
  problems += parsed.report();
  if (parsed.ok()) {
    try {
      commit(std::move(parsed.policy), runtime, "start");
      loaded_from_ = LoadSource::policy;
      policy_file_.loaded(parsed.sources);
      save_last_good();
      // On disk before READY=1, as before: a start is when a copy a crash left behind is
      // made anew.
      if (state_) state_->wait_for_last_good();
      return problems;
    } catch (const std::exception& failure) {
      problems += failure.what();
      problems += '\n';
    }
  }
  if (state_) {
    ParsedPolicy last_good = parse_kept_policy(StateFile::last_good);
    if (last_good.ok()) {
      try {
        commit(std::move(last_good.policy), runtime, "start");
        loaded_from_ = LoadSource::last_good;
        file_differs_ =
            "it could not be loaded at start, portierd's log says why, so the last good policy "
            "is loaded; a restart tries the file again, and so does reload";
        return problems + "loaded the last good policy from " + state_->name(StateFile::last_good) +
               "\n";
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
  loaded_from_ = LoadSource::fail_closed;
  file_differs_ =
      "neither it nor a last good policy could be loaded at start, so the built-in fail-closed "
      "policy is loaded; a restart tries the file again, and so does reload";
  return problems + "loaded the built-in fail-closed policy: new inbound connections are dropped\n";
}

void Firewall::reload() {
  if (pending_)
    throw InvalidRequest("an apply is waiting for confirmation: confirm or roll back first");
  ParsedPolicy parsed = read_policy_file();
  if (!parsed.ok()) throw PolicyError(parsed.report());
  RuntimeState runtime = runtime_;
  // Forget toggles of rules the new policy no longer has.
  std::erase_if(runtime.toggles,
                [&](const auto& toggle) { return !is_toggleable(parsed.policy, toggle.first); });
  commit(std::move(parsed.policy), std::move(runtime), "reload");
  loaded_from_ = LoadSource::policy;
  policy_file_.loaded(parsed.sources);
  file_differs_.clear();
  save_last_good();
}

void Firewall::set_rule_enabled(const std::string& name, bool enabled, bool permanent) {
  const bool timed = std::any_of(runtime_.timed_rules.begin(), runtime_.timed_rules.end(),
                                 [&](const TimedRule& t) { return t.rule.name == name; });
  if (timed && !is_toggleable(policy_, name)) {
    // A timed rule (`portierctl allow`) is on until it ends: disabling it ends it now.
    if (enabled) throw InvalidRequest("timed rule '" + name + "' is on until it ends");
    if (permanent) throw InvalidRequest("timed rule '" + name + "' is not in the policy file");
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
    ParsedPolicy parsed = read_policy_file();
    if (!parsed.ok()) throw PolicyError(parsed.report());
    commit(std::move(parsed.policy), std::move(runtime), "toggle");
    policy_file_.loaded(parsed.sources);
    save_last_good();
  } else if (table_.loaded() && !runtime_.panic) {
    // Nothing else changes: no recompile, only this rule's kernel rules.
    LoadedTable::Change change = table_.toggle(name, enabled);
    std::vector<std::uint64_t> handles;
    if (!change.sends_nothing()) handles = kernel_.edit(table_.full(), change.edit);
    table_.made(std::move(change), handles);
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
  std::optional<std::string> edited = edit_enabled(*text, where.file, name, enabled);
  if (!edited) throw InvalidRequest("cannot find '" + name + "' in " + where.file);
  write_file_atomically(where.file, *edited);
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
    loaded_from_ = LoadSource::policy;
    policy_file_.loaded(sources);
    file_differs_.clear();
    save_last_good();
  }
  return generation_;
}

void Firewall::confirm() {
  if (!pending_) throw NotPending("no apply is waiting for confirmation");
  if (pending_->path != options_.policy_path) install_policy_file(pending_->text);
  policy_file_.loaded(pending_->sources);
  file_differs_.clear();
  pending_.reset();
  loaded_from_ = LoadSource::policy;
  save_last_good();
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
    ParsedPolicy parsed = read_policy_file();
    if (!parsed.ok()) throw PolicyError(parsed.report());
    commit(std::move(parsed.policy), runtime_, "rollback");
    policy_file_.loaded(parsed.sources);
  } catch (const std::exception& failure) {
    // It no longer loads (a cgroup it names is gone, say): the applied file stays, and the
    // previous good policy is loaded without it.
    log_line(std::string("the policy file before the last apply does not load any more, "
                         "rolling back to the previous good policy alone: ") +
             failure.what());
    if (applied) write_file_atomically(options_.policy_path, *applied);
    return false;
  }
  policy_file_.forget_replaced();
  loaded_from_ =
      LoadSource::last_good;  // the policy before the last, as without a file to put back
  file_differs_.clear();
  save_last_good();  // a later start with a broken file falls back to it, too
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
  ParsedPolicy previous = parse_kept_policy(StateFile::previous_good);
  if (!state_ || !previous.ok())
    throw NotPending("nothing to roll back to: no apply is pending and no previous policy is kept");
  commit(std::move(previous.policy), runtime_, "rollback");
  loaded_from_ = LoadSource::last_good;
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
  // As policy text, which the parser checks as it checks the file's rules (with the same
  // messages), and which the runtime state keeps.
  const std::string text = write_rule({name, request.direction, request.action, request.protocols,
                                       request.ports, request.from, request.to});
  ParsedPolicy parsed = parse_policy_fragment(text, "timed rule", tables_);
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
  runtime.timed_rules.push_back({parsed.policy.rules[0], text, options_.now() + request.duration});
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

ParsedPolicy Firewall::check(const std::string& text, const std::string& file_name) const {
  return parse_untrusted_policy(text, file_name, tables_);
}

bool Firewall::edit_set_in_place(const NamedSet& set, const std::vector<std::string>& add,
                                 const std::vector<std::string>& remove,
                                 std::optional<std::chrono::seconds> timeout) {
  if (!table_.loaded() || runtime_.panic) return false;
  std::optional<std::vector<SetEdit>> edits = table_.set_edits(set, add, remove, timeout);
  if (!edits) return false;
  for (const SetEdit& edit : *edits) {
    try {
      kernel_.edit_set(table_.table(), edit);
    } catch (const KernelError& refused) {
      // An element overlapping one the kernel has, or one removed from inside a larger
      // range: the whole set is loaded anew instead, which always works.
      log_line("set " + set.name + " changed by reloading it: " + refused.what());
      return false;
    }
    table_.set_edited(edit);
  }
  return true;
}

ir::Ruleset Firewall::loaded_ruleset() const { return table_.ruleset(); }

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
  SetChange change = set_change(*set, runtime_, elements, true);
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
  SetChange change = set_change(*set, runtime_, elements, false);
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
    log_line("apply not confirmed in time: rolled back (generation " + std::to_string(generation_) +
             ")");
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
  log_line("table changed from outside (" + what + "): loading it again");
  table_.forget();  // whatever the kernel has now, load ours whole
  table_.take_out_removed();
  install(Built{table_.full(), table_.disabled()}, "drift-repair");
}

bool Firewall::repair_drift_if_changed(KernelChanges& changes) {
  if (!changes.changed_by_others(table_.table())) return false;
  repair_drift("nftables change notification");
  return true;
}

void Firewall::save_runtime() {
  if (!state_) return;
  runtime_unsaved_ = true;
  ++state_generation_;
}

void Firewall::flush_state() {
  if (!runtime_unsaved_) return;
  runtime_unsaved_ = false;
  state_->post_runtime(write_runtime_state(runtime_), state_generation_);
}

int Firewall::state_fd() const { return state_ ? state_->runtime_fd() : -1; }

std::vector<StateWriter::Outcome> Firewall::take_state_outcomes() {
  return state_ ? state_->take_runtime_outcomes() : std::vector<StateWriter::Outcome>{};
}

void Firewall::release_memory() {
  // Parsing, compiling and encoding a big policy, and writing the last good copy, leave
  // megabytes of freed heap behind that malloc keeps: a long-running daemon gives them
  // back once the loads have stopped for a while.
  trim_heap();
}

void Firewall::wait_for_state() {
  flush_state();
  if (!state_) return;
  state_->wait_for_runtime();
  state_->wait_for_last_good();
}

Firewall::~Firewall() { flush_state(); }  // the state store writes it before it goes

// The last policy the kernel accepted, self-contained, for a later start whose file is
// broken; the one before it stays as previous-good.toml for `portierctl rollback`.
void Firewall::save_last_good() const {
  if (!state_) return;
  try {
    state_->post_last_good(write_policy(policy_));
  } catch (const std::exception& failure) {
    // The new ruleset is in force; only the fallback copy for a later start is stale.
    log_line(std::string("warning: last good policy not saved: ") + failure.what());
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
  for (const ir::RuleMap& map : table_.full().maps) maps.push_back(map.name);
  for (const RuleCounter& counter : kernel_.read_counters(table_.table(), maps)) {
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
  status.table = table_.table();
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
  status.loaded_from = to_string(loaded_from_);
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
  for (const ir::NamedSet& set : table_.full().sets)
    if (set.key == ir::SetKey::cgroupv2) status.owners.push_back(owner_status(set));
  return status;
}

bool Firewall::follow_cgroups() {
  if (!table_.loaded()) return false;
  std::vector<CgroupChange> changes = bound_.changes(table_.full());
  if (changes.empty()) return false;
  bool reload_whole = false;
  for (const CgroupChange& change : changes) {
    SetEdit edit{change.set, ir::SetKey::cgroupv2, false, {}, {}, std::nullopt};
    for (const ir::CgroupMember& member : change.before)
      edit.remove.push_back(ir::cgroup_element(member.id));
    for (const ir::CgroupMember& member : change.after)
      edit.add.push_back(ir::cgroup_element(member.id));
    try {
      kernel_.edit_set(table_.table(), edit);
    } catch (const KernelError& refused) {
      // The kernel's set is not what we think it holds: load the table whole instead.
      log_line("set " + change.set + " changed by reloading the table: " + refused.what());
      reload_whole = true;
    }
    table_.set_cgroups(change.set, change.after);
  }
  if (reload_whole) {
    table_.forget();
    install(Built{table_.full(), table_.disabled()}, "cgroups");
  }
  bound_.loaded(table_.full());
  for (const CgroupChange& change : changes) {
    const ir::NamedSet* set = nullptr;
    for (const ir::NamedSet& candidate : table_.full().sets)
      if (candidate.name == change.set) set = &candidate;
    if (!set) continue;
    OwnerStatus owner = owner_status(*set);
    if (owner.cgroup)
      log_line(owner.kind + " " + owner.name + ": " + owner.owner + " started (cgroup id " +
               std::to_string(owner.cgroup->id) + ")");
    else
      log_line(owner.kind + " " + owner.name + ": " + owner.owner +
               " stopped: nobody may serve its ports until it runs");
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

FirewallStatus Firewall::status_with_neighbours() const {
  FirewallStatus status = this->status();
  if (options_.interfaces) status.neighbours = neighbours_seen(policy_, options_.interfaces());
  return status;
}

std::string Firewall::ruleset_text() const { return render_nft(loaded_ruleset()); }

}  // namespace portier
