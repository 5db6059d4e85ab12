#include "dbus_service.h"

#include <cstdio>
#include <memory>
#include <set>

#include "inspect.h"

namespace portier {
namespace {

constexpr std::size_t kMaxName = 63;
constexpr std::size_t kMaxPath = 4096;
constexpr std::size_t kMaxPolicyText = 64 * 1024 * 1024;

std::uint64_t usec_since_epoch(Clock::time_point time) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count());
}

// Runs a firewall operation, turning its failures into the named errors of the API.
template <typename Operation>
auto translated(Operation&& operation) -> decltype(operation()) {
  try {
    return operation();
  } catch (const sdbus::Error&) {
    throw;
  } catch (const PolicyError& failure) {
    throw sdbus::Error(bus_error::kInvalidPolicy, failure.what());
  } catch (const NoSuchRule& failure) {
    throw sdbus::Error(bus_error::kNoSuchRule, failure.what());
  } catch (const NoSuchSet& failure) {
    throw sdbus::Error(bus_error::kNoSuchSet, failure.what());
  } catch (const InvalidRequest& failure) {
    throw sdbus::Error(bus_error::kInvalidArgument, failure.what());
  } catch (const NotPending& failure) {
    throw sdbus::Error(bus_error::kNotPending, failure.what());
  } catch (const KernelError& failure) {
    throw sdbus::Error(bus_error::kKernelRefused, failure.what());
  } catch (const std::exception& failure) {
    throw sdbus::Error(bus_error::kFailed, failure.what());
  }
}

// The change is in the kernel, but a restart would not bring it back: the caller must know.
sdbus::Error not_saved(const std::string& why) {
  return sdbus::Error(bus_error::kNotSaved,
                      "the change is in force, but it could not be saved and a restart of "
                      "portierd would undo it: " +
                          why);
}

void require(bool condition, const std::string& message) {
  if (!condition) throw sdbus::Error(bus_error::kInvalidArgument, message);
}

// Options are checked strictly: an unknown key is a mistake the caller should hear of.
void check_keys(const Options& options, const std::set<std::string>& known, std::string_view what) {
  for (const auto& [key, value] : options)
    require(known.count(key) > 0, "unknown option '" + key + "' for " + std::string(what));
}

template <typename T>
std::optional<T> option(const Options& options, const std::string& key) {
  auto it = options.find(key);
  if (it == options.end()) return std::nullopt;
  require(it->second.containsValueOfType<T>(), "option '" + key + "' has the wrong type");
  return it->second.get<T>();
}

void check_name(const std::string& name, std::string_view what) {
  require(!name.empty() && name.size() <= kMaxName, std::string(what) + " must be 1 to 63 characters");
}

}  // namespace

FirewallService::FirewallService(sdbus::IConnection& connection, Firewall& firewall)
    : AdaptorInterfaces(connection, kObjectPath), firewall_(firewall), polkit_(connection) {
  registerAdaptor();
  firewall_.set_events(this);
}

FirewallService::~FirewallService() {
  firewall_.set_events(nullptr);
  unregisterAdaptor();
}

namespace {

std::string refusal(std::string_view what, uid_t uid, PolkitAnswer answer, bool interactive) {
  std::string why = "permission denied: " + std::string(what) +
                    " needs root or the polkit action " + kPolkitAction + " (caller uid " +
                    std::to_string(uid) + ")";
  switch (answer) {
    case PolkitAnswer::granted:
      break;
    case PolkitAnswer::refused:
      // polkit answers a failed password like a rule that says no.
      if (interactive) why += "; the authentication failed, or polkit's rules refuse it";
      break;
    case PolkitAnswer::needs_authentication:
      why +=
          interactive
              ? "; polkit wants the caller to authenticate, and no authentication agent serves it"
              : "; polkit wants the caller to authenticate, and the call did not allow that: run "
                "portierctl on a terminal to be asked for a password, use sudo, or grant the "
                "action with a polkit rule";
      break;
    case PolkitAnswer::dismissed:
      why += "; the authentication was cancelled";
      break;
    case PolkitAnswer::absent:
      why += "; polkit is not running, so only root may";
      break;
    case PolkitAnswer::failed:
      why += "; polkit could not answer (portierd's log says why)";
      break;
    case PolkitAnswer::timed_out:
      why += "; no authentication within " +
             std::to_string(PolkitAuthority::kInteractiveLimit.count()) + " s";
      break;
    case PolkitAnswer::busy:
      why += "; too many authorizations are waiting, try again later";
      break;
    case PolkitAnswer::caller_left:
      why += "; the caller left while authenticating";
      break;
  }
  return why;
}

}  // namespace

// Makes the change and answers: at once with its error if it fails, else once what it
// changed in the runtime state is on disk (it is acknowledged only when a crash right
// after the reply would not lose it). A change that left the runtime state alone (its
// files, if any, are written before it returns) is answered at once.
template <typename... Results, typename Change>
void FirewallService::reply_when_saved(sdbus::Result<Results...>& result, Change& change) {
  try {
    const std::uint64_t before = firewall_.state_generation();
    // sdbus::Result cannot be copied, and a held reply lives in a std::function.
    auto held = std::make_shared<sdbus::Result<Results...>>(std::move(result));
    auto answer = [&]() -> SavedReplies::Reply {
      if constexpr (sizeof...(Results) == 0) {
        translated(change);
        return [held](const std::string* error) {
          if (error)
            held->returnError(not_saved(*error));
          else
            held->returnResults();
        };
      } else {
        return [held, value = translated(change)](const std::string* error) {
          if (error)
            held->returnError(not_saved(*error));
          else
            held->returnResults(value);
        };
      }
    };
    SavedReplies::Reply reply;
    try {
      reply = answer();
    } catch (const sdbus::Error& error) {
      held->returnError(error);
      return;
    }
    const std::uint64_t needed = firewall_.state_generation();
    if (needed == before)
      reply(nullptr);
    else
      saved_replies_.after(needed, std::move(reply));
  } catch (const sdbus::Error& error) {
    std::fprintf(stderr, "portierd: cannot answer a call: %s\n", error.what());
  }
}

void FirewallService::answer_saved() {
  for (const StateWriter::Outcome& outcome : firewall_.take_state_outcomes())
    saved_replies_.settled(outcome.generation, outcome.error);
}

// polkit decides for non-root callers when it is on the bus; without it only root may
// change the firewall. A caller that allows interactive authorization (portierctl on a
// terminal) may be asked for a password by its authentication agent, so the answer can take
// as long as typing takes: the method's reply waits, portierd's event loop does not.
template <typename... Results, typename Change>
void FirewallService::when_authorized(sdbus::Result<Results...>&& result, std::string_view what,
                                      Change change) {
  auto message = getObject().getCurrentlyProcessedMessage();
  // The bus daemon vouches for the caller's uid, so it can be trusted for this check.
  uid_t uid = message->getCredsUid();
  if (uid == 0) {
    reply_when_saved(result, change);
    return;
  }
  struct Waiting {
    sdbus::Result<Results...> result;
    Change change;
  };
  auto waiting = std::make_shared<Waiting>(Waiting{std::move(result), std::move(change)});
  bool interactive = allows_interactive_authorization(*message);
  std::string sender = message->getSender();
  polkit_.check(
      sender, uid, kPolkitAction, interactive,
      [this, waiting, uid, interactive, what = std::string(what)](PolkitAnswer answer) {
        // This runs from the event loop, where nothing may escape.
        try {
          if (answer == PolkitAnswer::granted) {
            reply_when_saved(waiting->result, waiting->change);
            return;
          }
          // Whoever was asked for a password has given up waiting (portierctl was ended):
          // a change nobody waits for any more is not made, whatever polkit said.
          if (answer == PolkitAnswer::caller_left)
            std::fprintf(stderr,
                         "portierd: %s by uid %u not done: the caller left while authenticating\n",
                         what.c_str(), static_cast<unsigned>(uid));
          waiting->result.returnError(
              sdbus::Error(bus_error::kAccessDenied, refusal(what, uid, answer, interactive)));
        } catch (const std::exception& failure) {
          std::fprintf(stderr, "portierd: cannot answer %s by uid %u: %s\n", what.c_str(),
                       static_cast<unsigned>(uid), failure.what());
        }
      });
}

void FirewallService::applied(std::uint64_t generation, std::string_view reason) {
  std::fprintf(stderr, "portierd: ruleset generation %llu loaded (%.*s)\n",
               static_cast<unsigned long long>(generation), static_cast<int>(reason.size()), reason.data());
  emitApplied(generation, std::string(reason));
}

void FirewallService::rule_changed(const std::string& name, bool enabled) {
  std::fprintf(stderr, "portierd: %s %s\n", name.c_str(), enabled ? "enabled" : "disabled");
  emitRuleChanged(name, enabled);
}

void FirewallService::confirm_pending(std::uint32_t seconds) {
  std::fprintf(stderr, "portierd: waiting %u s for confirmation, then rolling back\n", seconds);
  emitConfirmPending(seconds);
}

void FirewallService::rolled_back(std::string_view reason) {
  std::fprintf(stderr, "portierd: rolled back: %.*s\n", static_cast<int>(reason.size()), reason.data());
  emitRolledBack(std::string(reason));
}

void FirewallService::owner_changed(const OwnerStatus& owner) {
  // Firewall::follow_cgroups() has logged it already.
  emitOwnerChanged(owner.kind, owner.name, owner.owner, owner.cgroup.has_value(),
                   owner.cgroup ? owner.cgroup->path : std::string(),
                   owner.cgroup ? owner.cgroup->id : 0);
}

void FirewallService::emit_packet_logged(const LoggedPacket& packet) {
  if (!packet_limiter_.admit(std::chrono::steady_clock::now())) return;
  LogPrefix prefix = parse_log_prefix(packet.prefix);
  std::string verdict = packet_verdicts_.of(prefix, firewall_);
  namespace key = bus_key::packet;
  std::map<std::string, sdbus::Variant> facts{
      {key::kPrefix, sdbus::Variant(packet.prefix)},
      {key::kRule, sdbus::Variant(prefix.rule)},
      {key::kVerdict, sdbus::Variant(verdict)},
      {key::kIn, sdbus::Variant(packet.in)},
      {key::kOut, sdbus::Variant(packet.out)},
      {key::kFamily, sdbus::Variant(packet.family)},
      {key::kProtocol, sdbus::Variant(packet.protocol)},
      {key::kSource, sdbus::Variant(packet.source)},
      {key::kDestination, sdbus::Variant(packet.destination)},
      {key::kSport, sdbus::Variant(packet.sport)},
      {key::kDport, sdbus::Variant(packet.dport)},
  };
  if (!prefix.chain.empty()) facts.emplace(key::kChain, sdbus::Variant(prefix.chain));
  if (packet.icmp_type) facts.emplace(key::kIcmpType, sdbus::Variant(*packet.icmp_type));
  if (packet.icmp_code) facts.emplace(key::kIcmpCode, sdbus::Variant(*packet.icmp_code));

  std::fprintf(stderr, "portierd: %s\n", packet_log_line(packet, prefix, verdict).c_str());
  emitPacketLogged(facts);
}

std::optional<std::chrono::steady_clock::time_point> FirewallService::flush_packet_log() {
  if (std::uint64_t suppressed = packet_limiter_.take_suppressed(std::chrono::steady_clock::now())) {
    std::fprintf(stderr, "portierd: %llu more logged packets suppressed (at most %u a second are relayed)\n",
                 static_cast<unsigned long long>(suppressed), kRelayedPacketsPerSecond);
    emitPacketLogged(
        {{bus_key::packet::kSuppressed, sdbus::Variant(static_cast<std::uint64_t>(suppressed))}});
  }
  return packet_limiter_.summary_due();
}

std::map<std::string, sdbus::Variant> FirewallService::GetStatus() {
  namespace key = bus_key::status;
  FirewallStatus status = firewall_.status_with_neighbours();
  std::map<std::string, sdbus::Variant> facts{
      {key::kVersion, sdbus::Variant(std::string(PORTIER_VERSION))},
      {key::kPolicyPath, sdbus::Variant(status.policy_path)},
      {key::kTable, sdbus::Variant(status.table)},
      {key::kRules, sdbus::Variant(static_cast<uint32_t>(status.rules))},
      {key::kRulesEnabled, sdbus::Variant(static_cast<uint32_t>(status.rules_enabled))},
      {key::kTimedRules, sdbus::Variant(static_cast<uint32_t>(status.timed_rules))},
      {key::kGeneration, sdbus::Variant(status.generation)},
      {key::kLastAppliedUsec, sdbus::Variant(usec_since_epoch(status.last_applied))},
      {key::kMode, sdbus::Variant(std::string(to_string(status.mode)))},
      {key::kLoadedFrom, sdbus::Variant(status.loaded_from)},
      {key::kSets, sdbus::Variant(status.sets)},
      {key::kSetFamilies, sdbus::Variant(status.set_families)},
      {key::kNeighbours, sdbus::Variant(status.neighbours)},
  };
  if (status.confirm_deadline)
    facts.emplace(key::kConfirmDeadlineUsec,
                  sdbus::Variant(usec_since_epoch(*status.confirm_deadline)));
  std::vector<sdbus::Struct<std::string, std::string, std::string, bool, std::string, uint64_t, uint64_t>> owners;
  for (const OwnerStatus& owner : status.owners)
    owners.emplace_back(owner.kind, owner.name, owner.owner, owner.cgroup.has_value(),
                        owner.cgroup ? owner.cgroup->path : std::string(),
                        owner.cgroup ? owner.cgroup->id : 0,
                        owner.since ? usec_since_epoch(*owner.since) : 0);
  facts.emplace(key::kOwners, sdbus::Variant(owners));
  facts.emplace(key::kPolicyFile, sdbus::Variant(std::string(status.policy_file_differs.empty()
                                                                 ? key::kPolicyFileSame
                                                                 : key::kPolicyFileDiffers)));
  if (!status.policy_file_differs.empty())
    facts.emplace(key::kPolicyFileDetail, sdbus::Variant(status.policy_file_differs));
  return facts;
}

std::vector<RuleEntry> FirewallService::ListRules() {
  return translated([&] {
    std::vector<RuleEntry> result;
    for (const RuleStatus& rule : firewall_.rules())
      result.emplace_back(rule.name, rule.enabled, rule.direction, rule.action, rule.match,
                          rule.packets, rule.bytes);
    return result;
  });
}

void FirewallService::SetRuleEnabled(sdbus::Result<>&& result, std::string name, bool enabled,
                                     Options options) {
  check_name(name, "rule name");
  check_keys(options, {bus_key::toggle::kPermanent}, "SetRuleEnabled");
  bool permanent = option<bool>(options, bus_key::toggle::kPermanent).value_or(false);
  when_authorized(std::move(result), enabled ? "enabling a rule" : "disabling a rule",
                  [this, name = std::move(name), enabled, permanent] {
                    firewall_.set_rule_enabled(name, enabled, permanent);
                  });
}

void FirewallService::Reload(sdbus::Result<>&& result) {
  when_authorized(std::move(result), "reloading the policy", [this] { firewall_.reload(); });
}

void FirewallService::reload_logged() {
  try {
    firewall_.reload();
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "portierd: reload failed, the active ruleset stays:\n%s\n", failure.what());
  }
}

std::tuple<bool, std::string> FirewallService::Check(const std::string& text, const std::string& file_name) {
  require(text.size() <= kMaxPolicyText, "policy text is larger than 64 MiB");
  require(file_name.size() <= kMaxPath, "file name is too long");
  ParsedPolicy parsed = firewall_.check(text, file_name.empty() ? "policy.toml" : file_name);
  return {parsed.ok(), parsed.report()};
}

void FirewallService::Apply(sdbus::Result<uint64_t>&& result, std::string path, Options options) {
  require(!path.empty() && path.size() <= kMaxPath && path[0] == '/', "path must be absolute");
  check_keys(options, {bus_key::apply::kConfirmSeconds}, "Apply");
  std::optional<std::chrono::seconds> confirm;
  if (auto seconds = option<uint32_t>(options, bus_key::apply::kConfirmSeconds)) {
    require(*seconds >= 1 && *seconds <= 3600, "confirm_seconds must be from 1 to 3600");
    confirm = std::chrono::seconds(*seconds);
  }
  when_authorized(std::move(result), "applying a policy", [this, path = std::move(path), confirm] {
    return firewall_.apply_file(path, confirm);
  });
}

void FirewallService::Confirm(sdbus::Result<>&& result) {
  when_authorized(std::move(result), "confirming an apply", [this] { firewall_.confirm(); });
}

void FirewallService::Rollback(sdbus::Result<>&& result) {
  when_authorized(std::move(result), "rolling back", [this] { firewall_.rollback(); });
}

void FirewallService::AddTimedRule(sdbus::Result<std::string>&& result, Options rule) {
  namespace key = bus_key::timed_rule;
  check_keys(rule,
             {key::kDirection, key::kProtocols, key::kPorts, key::kFrom, key::kTo, key::kAction,
              key::kDurationSeconds},
             "AddTimedRule");
  TimedRuleRequest request;
  request.direction = option<std::string>(rule, key::kDirection).value_or("in");
  request.action = option<std::string>(rule, key::kAction).value_or("accept");
  request.protocols =
      option<std::vector<std::string>>(rule, key::kProtocols).value_or(std::vector<std::string>{});
  request.ports =
      option<std::vector<std::string>>(rule, key::kPorts).value_or(std::vector<std::string>{});
  request.from =
      option<std::vector<std::string>>(rule, key::kFrom).value_or(std::vector<std::string>{});
  request.to =
      option<std::vector<std::string>>(rule, key::kTo).value_or(std::vector<std::string>{});
  auto seconds = option<uint32_t>(rule, key::kDurationSeconds);
  require(seconds.has_value(), std::string(key::kDurationSeconds) + " is required");
  request.duration = std::chrono::seconds(*seconds);
  for (const auto* list : {&request.protocols, &request.ports, &request.from, &request.to})
    require(list->size() <= 1024, "at most 1024 protocols, ports or addresses in a timed rule");
  when_authorized(std::move(result), "adding a timed rule", [this, request = std::move(request)] {
    return firewall_.add_timed_rule(request);
  });
}

void FirewallService::RemoveTimedRule(sdbus::Result<>&& result, std::string name) {
  check_name(name, "timed rule name");
  when_authorized(std::move(result), "removing a timed rule",
                  [this, name = std::move(name)] { firewall_.remove_timed_rule(name); });
}

void FirewallService::AddSetElements(sdbus::Result<>&& result, std::string set,
                                     std::vector<std::string> elements, Options options) {
  check_name(set, "set name");
  check_keys(options, {bus_key::set_elements::kTimeoutSeconds}, "AddSetElements");
  std::optional<std::chrono::seconds> timeout;
  if (auto seconds = option<uint32_t>(options, bus_key::set_elements::kTimeoutSeconds)) {
    require(*seconds >= 1, "timeout_seconds must be at least 1");
    timeout = std::chrono::seconds(*seconds);
  }
  when_authorized(std::move(result), "adding set elements",
                  [this, set = std::move(set), elements = std::move(elements), timeout] {
                    firewall_.add_set_elements(set, elements, timeout);
                  });
}

void FirewallService::RemoveSetElements(sdbus::Result<>&& result, std::string set,
                                        std::vector<std::string> elements) {
  check_name(set, "set name");
  when_authorized(std::move(result), "removing set elements",
                  [this, set = std::move(set), elements = std::move(elements)] {
                    firewall_.remove_set_elements(set, elements);
                  });
}

std::vector<std::string> FirewallService::ListSetElements(const std::string& set) {
  check_name(set, "set name");
  return translated([&] { return firewall_.list_set_elements(set); });
}

void FirewallService::SetPanic(sdbus::Result<>&& result, bool on, Options options) {
  check_keys(options, {bus_key::panic::kKeepEstablished}, "SetPanic");
  bool keep = option<bool>(options, bus_key::panic::kKeepEstablished).value_or(false);
  when_authorized(std::move(result), on ? "turning panic mode on" : "turning panic mode off",
                  [this, on, keep] { firewall_.set_panic(on, keep); });
}

std::string FirewallService::GetRuleset() {
  return translated([&] { return firewall_.ruleset_text(); });
}

std::map<std::string, sdbus::Variant> FirewallService::Explain(const std::vector<std::string>& words) {
  require(words.size() <= 32, "too many words for a packet shape");
  return translated([&] {
    namespace key = bus_key::explain;
    PacketExplanation result = explain_in_force(firewall_, words);
    return std::map<std::string, sdbus::Variant>{
        {key::kVerdict, sdbus::Variant(result.verdict)},
        {key::kDecidedBy, sdbus::Variant(result.decided_by)},
        {key::kChain, sdbus::Variant(result.chain)},
        {key::kWhere, sdbus::Variant(result.where)},
        {key::kTrace, sdbus::Variant(result.trace)},
        {key::kPublished, sdbus::Variant(result.published)}};
  });
}

void FirewallService::ListPorts(
    sdbus::Result<std::vector<std::map<std::string, sdbus::Variant>>>&& result) {
  // Which process and user hold which socket is for administrators, as `ss -p` is.
  when_authorized(std::move(result), "listing the processes behind open ports", [this] {
    namespace key = bus_key::port;
    std::vector<std::map<std::string, sdbus::Variant>> ports;
    for (const PortEntry& entry : ports_in_force(firewall_)) {
      std::vector<sdbus::Struct<std::string, bool, std::string>> zones;
      for (const ZoneVerdict& zone : entry.zones)
        zones.emplace_back(zone.zone, zone.accepted, zone.decided_by);
      std::map<std::string, sdbus::Variant>& facts = ports.emplace_back();
      facts = {
          {key::kKind,
           sdbus::Variant(std::string(entry.published ? key::kKindPublished : key::kKindListener))},
          {key::kProtocol, sdbus::Variant(entry.protocol)},
          {key::kFamily, sdbus::Variant(entry.family)},
          {key::kAddress, sdbus::Variant(entry.address)},
          {key::kPort, sdbus::Variant(entry.port)},
          {key::kScope, sdbus::Variant(entry.scope)},
          {key::kZones, sdbus::Variant(zones)},
          {key::kWarnings, sdbus::Variant(entry.warnings)},
      };
      // Each kind has the keys the XML lists for it, and no others.
      if (entry.published) {
        facts.emplace(key::kPortLast, sdbus::Variant(entry.port_last));
        facts.emplace(key::kTarget, sdbus::Variant(entry.target));
        facts.emplace(key::kVia, sdbus::Variant(entry.via));
        facts.emplace(key::kPublishedBy, sdbus::Variant(entry.published_by));
        facts.emplace(key::kComment, sdbus::Variant(entry.comment));
      } else {
        facts.emplace(key::kPid, sdbus::Variant(entry.pid));
        facts.emplace(key::kProcess, sdbus::Variant(entry.process));
        facts.emplace(key::kUid, sdbus::Variant(entry.uid));
        facts.emplace(key::kUser, sdbus::Variant(entry.user));
        facts.emplace(key::kUnit, sdbus::Variant(entry.unit));
        facts.emplace(key::kCgroup, sdbus::Variant(entry.cgroup));
      }
    }
    return ports;
  });
}

std::string FirewallService::Version() { return PORTIER_VERSION; }
std::string FirewallService::PolicyPath() { return firewall_.policy_path(); }
std::string FirewallService::Mode() { return std::string(to_string(firewall_.mode())); }
uint64_t FirewallService::Generation() { return firewall_.generation(); }
uint64_t FirewallService::LastApplied() { return usec_since_epoch(firewall_.last_applied()); }

}  // namespace portier
