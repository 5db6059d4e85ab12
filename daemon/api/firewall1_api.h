// The names of portierd's D-Bus API, org.portier.Firewall1 (daemon/org.portier.Firewall1.xml
// describes it): the bus name, the object path, the interface, the polkit action, the
// error names, and the keys of every a{sv} the API carries, with the few values both sides
// compare. portierd (daemon/dbus_service.cpp) and portierctl (cli/) both spell them from
// here, so a key renamed on one side cannot silently read as missing on the other.
//
// Header-only, in a folder of its own with nothing else in it: the INTERFACE library
// portier_bus_api (daemon/CMakeLists.txt) puts this folder on the include path of both
// programs without giving portierctl the daemon's headers. No sdbus-c++ in here, so any
// test or tool can include it.
#pragma once

namespace portier {

inline constexpr const char* kBusName = "org.portier.Firewall1";
inline constexpr const char* kObjectPath = "/org/portier/Firewall1";
inline constexpr const char* kInterfaceName = "org.portier.Firewall1";
inline constexpr const char* kPolkitAction = "org.portier.Firewall1.manage";

/// Error names carried by D-Bus replies; the CLI shows their messages as they are.
namespace bus_error {
/// Every error name of the API starts with this.
inline constexpr const char* kPrefix = "org.portier.Firewall1.Error.";
inline constexpr const char* kAccessDenied = "org.portier.Firewall1.Error.AccessDenied";
inline constexpr const char* kNoSuchRule = "org.portier.Firewall1.Error.NoSuchRule";
inline constexpr const char* kNoSuchSet = "org.portier.Firewall1.Error.NoSuchSet";
inline constexpr const char* kInvalidPolicy = "org.portier.Firewall1.Error.InvalidPolicy";
inline constexpr const char* kKernelRefused = "org.portier.Firewall1.Error.KernelRefused";
inline constexpr const char* kInvalidArgument = "org.portier.Firewall1.Error.InvalidArgument";
inline constexpr const char* kNotPending = "org.portier.Firewall1.Error.NotPending";
inline constexpr const char* kFailed = "org.portier.Firewall1.Error.Failed";
/// The change is in force, but its state could not be written (a full disk, say).
inline constexpr const char* kNotSaved = "org.portier.Firewall1.Error.NotSaved";
}  // namespace bus_error

/// The keys of the a{sv} arguments and results, one namespace per a{sv}. Their types and
/// meanings are documented beside each method in the XML.
namespace bus_key {

/// GetStatus's result.
namespace status {
inline constexpr const char* kVersion = "version";
inline constexpr const char* kPolicyPath = "policy_path";
inline constexpr const char* kTable = "table";
inline constexpr const char* kRules = "rules";
inline constexpr const char* kRulesEnabled = "rules_enabled";
inline constexpr const char* kTimedRules = "timed_rules";
inline constexpr const char* kGeneration = "generation";
inline constexpr const char* kLastAppliedUsec = "last_applied_usec";
inline constexpr const char* kMode = "mode";
inline constexpr const char* kLoadedFrom = "loaded_from";
inline constexpr const char* kSets = "sets";
inline constexpr const char* kSetFamilies = "set_families";
inline constexpr const char* kNeighbours = "neighbours";
inline constexpr const char* kConfirmDeadlineUsec = "confirm_deadline_usec";
inline constexpr const char* kOwners = "owners";
inline constexpr const char* kPolicyFile = "policy_file";
inline constexpr const char* kPolicyFileDetail = "policy_file_detail";
// The values of policy_file.
inline constexpr const char* kPolicyFileSame = "same";
inline constexpr const char* kPolicyFileDiffers = "differs";
// The value of mode while an apply waits for Confirm.
inline constexpr const char* kModePendingConfirm = "pending-confirm";
}  // namespace status

/// SetRuleEnabled's options.
namespace toggle {
inline constexpr const char* kPermanent = "permanent";
}

/// Apply's options.
namespace apply {
inline constexpr const char* kConfirmSeconds = "confirm_seconds";
}

/// AddTimedRule's rule.
namespace timed_rule {
inline constexpr const char* kDirection = "direction";
inline constexpr const char* kProtocols = "protocols";
inline constexpr const char* kPorts = "ports";
inline constexpr const char* kFrom = "from";
inline constexpr const char* kTo = "to";
inline constexpr const char* kAction = "action";
inline constexpr const char* kDurationSeconds = "duration_seconds";
}  // namespace timed_rule

/// AddSetElements's options.
namespace set_elements {
inline constexpr const char* kTimeoutSeconds = "timeout_seconds";
}

/// SetPanic's options.
namespace panic {
inline constexpr const char* kKeepEstablished = "keep_established";
}

/// Explain's result.
namespace explain {
inline constexpr const char* kVerdict = "verdict";
inline constexpr const char* kDecidedBy = "decided_by";
inline constexpr const char* kChain = "chain";
inline constexpr const char* kWhere = "where";
inline constexpr const char* kTrace = "trace";
inline constexpr const char* kPublished = "published";
}  // namespace explain

/// Each entry of ListPorts's result.
namespace port {
inline constexpr const char* kKind = "kind";
inline constexpr const char* kProtocol = "protocol";
inline constexpr const char* kFamily = "family";
inline constexpr const char* kAddress = "address";
inline constexpr const char* kPort = "port";
inline constexpr const char* kScope = "scope";
inline constexpr const char* kZones = "zones";
inline constexpr const char* kWarnings = "warnings";
// kind listener only
inline constexpr const char* kPid = "pid";
inline constexpr const char* kProcess = "process";
inline constexpr const char* kUid = "uid";
inline constexpr const char* kUser = "user";
inline constexpr const char* kUnit = "unit";
inline constexpr const char* kCgroup = "cgroup";
// kind published only
inline constexpr const char* kPortLast = "port_last";
inline constexpr const char* kTarget = "target";
inline constexpr const char* kVia = "via";
inline constexpr const char* kPublishedBy = "published_by";
inline constexpr const char* kComment = "comment";
// The values of kind.
inline constexpr const char* kKindListener = "listener";
inline constexpr const char* kKindPublished = "published";
}  // namespace port

/// PacketLogged's packet.
namespace packet {
inline constexpr const char* kPrefix = "prefix";
inline constexpr const char* kRule = "rule";
inline constexpr const char* kChain = "chain";
inline constexpr const char* kVerdict = "verdict";
inline constexpr const char* kIn = "in";
inline constexpr const char* kOut = "out";
inline constexpr const char* kFamily = "family";
inline constexpr const char* kProtocol = "protocol";
inline constexpr const char* kSource = "source";
inline constexpr const char* kDestination = "destination";
inline constexpr const char* kSport = "sport";
inline constexpr const char* kDport = "dport";
inline constexpr const char* kIcmpType = "icmp_type";
inline constexpr const char* kIcmpCode = "icmp_code";
/// The only key of the summary of packets left out beyond the rate limit.
inline constexpr const char* kSuppressed = "suppressed";
}  // namespace packet

}  // namespace bus_key
}  // namespace portier
