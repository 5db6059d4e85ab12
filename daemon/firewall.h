// The daemon core: the policy in force, the runtime changes on top of it (toggles, timed
// rules, set elements, panic, a pending apply), and the state machine of apply, confirm,
// rollback and the fallbacks at start. It asks the others: LoadedTable for what the
// kernel has and the edits of a change (sent through the Kernel port), StateStore for
// the state files, PolicyFileState for the policy file's text around an apply.
// No D-Bus here; the bus adaptor calls into this and listens to its events.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "bound_cgroups.h"
#include "compile_policy.h"
#include "kernel.h"
#include "kernel_changes.h"
#include "loaded_table.h"
#include "parse_policy.h"
#include "policy.h"
#include "policy_file_state.h"
#include "runtime_state.h"
#include "state_store.h"
#include "state_writer.h"

namespace portier {

/// A policy (file, reload, apply) has errors; what() is the full report.
class PolicyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NoSuchRule : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NoSuchSet : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A request that does not make sense (bad element, no pending apply, ...).
class InvalidRequest : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NotPending : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Mode { normal, pending_confirm, panic };
std::string_view to_string(Mode mode);

/// Where the policy in force came from: the policy file, the state directory's last (or
/// previous) good copy, or the built-in policy that drops new inbound connections.
enum class LoadSource { policy, last_good, fail_closed };
/// As status and the log show it: policy, last-good or fail-closed.
std::string_view to_string(LoadSource source);

struct RuleStatus {
  std::string name;
  bool enabled = true;
  std::string direction;  // in, out, forward
  std::string action;     // accept, drop, reject; dnat for a port forward
  std::string match;      // describe_match()
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
};

/// A bind's (or a `unit =` rule's) owner and where its cgroup is now.
struct OwnerStatus {
  std::string kind;                        // bind or rule
  std::string name;                        // of the bind or rule
  std::string owner;                       // describe(): ssh.service, cgroup web/allowed
  std::optional<ir::CgroupMember> cgroup;  // none while the unit does not run
  std::optional<Clock::time_point> since;  // when that last changed
};

/// Which neighbour zones (rules/neighbours.h) have interfaces on the host now.
using NeighboursSeen = std::map<std::string, std::vector<std::string>>;

struct FirewallStatus {
  std::string policy_path;
  std::string table;
  std::size_t rules = 0;  // rules, port forwards and timed rules
  std::size_t rules_enabled = 0;
  std::size_t timed_rules = 0;
  std::uint64_t generation = 0;
  Clock::time_point last_applied;
  Mode mode = Mode::normal;
  std::optional<Clock::time_point> confirm_deadline;
  std::string loaded_from;  // to_string(LoadSource)
  /// Empty when the policy file holds what is loaded (and a restart would load it again);
  /// else how they differ, what a restart and a reload would load.
  std::string policy_file_differs;
  std::vector<std::string> sets;                    // names of the policy's named sets
  std::map<std::string, std::string> set_families;  // name -> ipv4, ipv6 or port
  std::vector<OwnerStatus> owners;                  // binds and rules by unit or cgroup
  NeighboursSeen neighbours;                        // filled by status_with_neighbours() only
};

/// What a timed rule says, as `portierctl allow` and AddTimedRule give it.
struct TimedRuleRequest {
  std::string direction = "in";
  std::vector<std::string> protocols;
  std::vector<std::string> ports;
  std::vector<std::string> from;
  std::vector<std::string> to;
  std::string action = "accept";
  std::chrono::seconds duration{0};
};

/// Told about every change, to become D-Bus signals.
class FirewallEvents {
 public:
  virtual void applied(std::uint64_t generation, std::string_view reason) = 0;
  virtual void rule_changed(const std::string& name, bool enabled) = 0;
  virtual void confirm_pending(std::uint32_t seconds) = 0;
  virtual void rolled_back(std::string_view reason) = 0;
  /// A bind's or rule's owner started (a cgroup) or stopped (none); its set changed.
  virtual void owner_changed(const OwnerStatus& /*owner*/) {}
  virtual ~FirewallEvents() = default;
};

struct FirewallOptions {
  std::string policy_path;
  std::string state_dir;  // where to keep state when `state` is null; empty: keep none
  CompileOptions compile;
  /// Where units and cgroups are (daemon/cgroups.h); null: nowhere, so bound ports stay
  /// closed. Not owned.
  const CgroupTree* cgroups = nullptr;
  std::function<Clock::time_point()> now = [] { return Clock::now(); };
  /// Where state is kept (not owned); null: in a StateDirectory over state_dir.
  StateStore* state = nullptr;
  /// The names of the host's interfaces (daemon/host_interfaces.h), for the neighbours
  /// status shows; null: none.
  std::function<std::vector<std::string>()> interfaces = nullptr;
};

class Firewall {
 public:
  Firewall(Kernel& kernel, FirewallOptions options, SystemTables tables);
  ~Firewall();
  Firewall(const Firewall&) = delete;
  Firewall& operator=(const Firewall&) = delete;

  /// Hands unsaved runtime changes to the state writer, which writes them to the state
  /// directory on its own thread (the fsync may take a while); called once the calls
  /// queued on the bus have been handled, so that they share one write.
  void flush_state();
  /// Counts the runtime changes that are to be written: a call that raised it is answered
  /// once take_state_outcomes() reports a write of at least this generation.
  std::uint64_t state_generation() const { return state_generation_; }
  /// Readable when the state writer finished a write; -1 before the first.
  int state_fd() const;
  /// The writes finished since the last call (StateWriter::take_outcomes()).
  std::vector<StateWriter::Outcome> take_state_outcomes();
  /// Gives freed heap back to the system (main.cpp calls it once no whole load came for
  /// kHeapDecayUsec).
  void release_memory();
  /// How many whole loads happened (each leaves freed heap for release_memory()).
  std::uint64_t whole_loads() const { return whole_loads_; }
  /// flush_state(), then waits until the state is on disk.
  void wait_for_state();

  void set_events(FirewallEvents* events) { events_ = events; }

  /// Loads what the daemon starts with: the policy file; if that fails, the last good
  /// policy from the state directory; if that fails too, a built-in policy that drops
  /// new inbound connections. Runtime changes from the state directory are put back.
  /// Returns what went wrong on the way (empty when the policy file loaded).
  std::string start();

  /// Reads the policy file and loads it; on error nothing in the kernel changes and
  /// PolicyError or KernelError is thrown. Runtime changes stay in force.
  void reload();

  /// Turns one rule or port forward on or off. `permanent` also edits the policy file.
  void set_rule_enabled(const std::string& name, bool enabled, bool permanent);

  /// Loads the policy at `path`. With `confirm`, rolls back unless confirm() comes in
  /// time; without, or once confirmed, `path`'s text becomes the policy file.
  std::uint64_t apply_file(const std::string& path, std::optional<std::chrono::seconds> confirm);
  void confirm();
  /// Back to the policy before a pending apply, or with none pending, to the last good
  /// policy before the current one.
  void rollback();

  std::string add_timed_rule(const TimedRuleRequest& request);
  void remove_timed_rule(const std::string& name);

  void set_panic(bool on, bool keep_established);

  /// Checks a policy text in the daemon's context (services, users) without loading it.
  ParsedPolicy check(const std::string& text, const std::string& file_name) const;

  /// Set elements at run time; all or nothing.
  void add_set_elements(const std::string& set, const std::vector<std::string>& elements,
                        std::optional<std::chrono::seconds> timeout);
  void remove_set_elements(const std::string& set, const std::vector<std::string>& elements);
  std::vector<std::string> list_set_elements(const std::string& set) const;

  /// Expires timed rules and set elements, and rolls back an unconfirmed apply.
  void on_timer();
  /// When on_timer() has something to do next.
  std::optional<Clock::time_point> next_deadline() const;

  /// The kernel changed our table behind our back: load ours again.
  void repair_drift(const std::string& what);
  /// Reads the pending change notifications; when others changed our table, loads ours
  /// again (repair_drift()). True if it did.
  bool repair_drift_if_changed(KernelChanges& changes);

  /// Cgroups came or went: every bind and `unit =` rule whose owner's cgroup is not what
  /// its set holds gets its set changed, in one small transaction each (nothing else in
  /// the table changes). True if anything changed.
  bool follow_cgroups();
  /// The cgroups whose children decide where the owners of the loaded ruleset are.
  std::vector<std::string> cgroups_to_watch() const { return bound_.to_watch(table_.full()); }

  std::vector<RuleStatus> rules() const;
  FirewallStatus status() const;
  /// status() with the neighbours seen among the host's interfaces: that lists them
  /// (options.interfaces, a netlink dump), which GetStatus wants and sd_notify after
  /// every change does not.
  FirewallStatus status_with_neighbours() const;
  std::string ruleset_text() const;
  /// What the kernel has, as IR.
  ir::Ruleset loaded_ruleset() const;
  /// The ports other tables publish to their containers and guests (their DNAT rules).
  std::vector<PublishedPort> published_ports() const {
    return kernel_.published_ports(table_.table());
  }
  /// The policy with the runtime changes (toggles, timed rules, set elements) applied.
  Policy policy_in_force() const { return effective(policy_, runtime_); }
  /// Every rule of the policy in force, timed rules included, without copying the policy.
  void for_each_rule(const std::function<void(const Rule&)>& visit) const {
    for (const Rule& rule : policy_.rules) visit(rule);
    for (const TimedRule& timed : runtime_.timed_rules) visit(timed.rule);
  }
  /// The nflog group of the policy's log statements (runtime changes never alter it).
  std::optional<std::uint16_t> log_group() const { return policy_.log_group; }
  const std::string& policy_path() const { return options_.policy_path; }
  std::uint64_t generation() const { return generation_; }
  Mode mode() const;
  LoadSource loaded_from() const { return loaded_from_; }
  Clock::time_point last_applied() const { return last_applied_; }

 private:
  /// A ruleset compiled with every rule enabled, and the rules to leave out of it.
  struct Built {
    ir::Ruleset full;
    RuleNames disabled;
  };
  Policy effective(const Policy& policy, const RuntimeState& runtime) const;
  /// The policy file and its drop-ins, read through read_cache_.
  ParsedPolicy read_policy_file() {
    return parse_policy_file(options_.policy_path, tables_, disk_files(), &read_cache_);
  }
  Built build(const Policy& policy, const RuntimeState& runtime) const;
  void install(Built built, std::string_view reason);
  RuleHandles replace_table(const ir::Ruleset& next);
  void applied(std::string_view reason);
  /// Adds/removes elements in the kernel's set directly; false if that was not possible
  /// and the caller must load the set anew.
  bool edit_set_in_place(const NamedSet& set, const std::vector<std::string>& add,
                         const std::vector<std::string>& remove,
                         std::optional<std::chrono::seconds> timeout);
  /// Applies `policy` with `runtime`; on success they become the current ones.
  void commit(Policy policy, RuntimeState runtime, std::string_view reason);
  void change_runtime(RuntimeState runtime, std::string_view reason);
  void save_runtime();
  /// Hands policy_, as text, to the state store as the last good policy; its thread writes
  /// it (post_last_good()), and the reply does not wait. It is not the record of the change
  /// (the policy file is, or the pending apply), only the fallback copy for a later start
  /// whose file is broken, and writing a megabyte with two fsyncs made a reload's reply (and
  /// the calls after it) wait about 10 ms for it. A crash before it is written leaves the
  /// copy one load behind; the start after it, if the file loads, writes it anew.
  void save_last_good() const;
  /// The policy kept in the state store as `file`, once its pending writes are done, parsed
  /// (an error if there is none).
  ParsedPolicy parse_kept_policy(StateFile file) const;
  void edit_enabled_in_file(const std::string& name, bool enabled);
  void finish_pending(std::string_view reason);
  /// Writes `text` as the policy file, keeping the text it replaces for rollback().
  void install_policy_file(const std::string& text);
  /// rollback() with nothing pending, when the last apply's file can be put back.
  bool roll_back_policy_file();

  OwnerStatus owner_status(const ir::NamedSet& set) const;

  Kernel& kernel_;
  FirewallOptions options_;
  std::unique_ptr<StateStore> own_state_;  // made when options_.state is null
  StateStore* state_;                      // null: keep no state
  BoundCgroups bound_;
  SystemTables tables_;
  // The policy file's rules as last read: a reload parses only the rules edited since.
  PolicyReadCache read_cache_;
  FirewallEvents* events_ = nullptr;

  Policy policy_;         // the policy in force (file, last good or built-in)
  RuntimeState runtime_;  // changes on top of it
  LoadedTable table_;     // what the kernel has
  bool runtime_unsaved_ = false;
  std::uint64_t state_generation_ = 0;
  std::uint64_t whole_loads_ = 0;  // each leaves freed heap behind (release_memory())
  LoadSource loaded_from_ = LoadSource::policy;
  PolicyFileState policy_file_;
  // Why the policy file and policy_ differ when no apply is pending; empty: they agree.
  std::string file_differs_;
  std::uint64_t generation_ = 0;
  Clock::time_point last_applied_;

  struct PendingApply {
    Policy previous;
    std::string path;  // the applied file, to install on confirm
    std::string text;
    std::map<std::string, std::string> sources;  // its files, for policy_file_.loaded()
    Clock::time_point deadline;
    std::string file_differs;  // file_differs_ before it, for a rollback
  };
  std::optional<PendingApply> pending_;
};

}  // namespace portier
