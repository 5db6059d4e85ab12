// The D-Bus edge of portierd: org.portier.Firewall1 on /org/portier/Firewall1.
// Translates calls into Firewall operations, failures into named D-Bus errors, and
// Firewall events into signals.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <memory>
#include <optional>

#include "firewall.h"
#include "firewall1_adaptor.h"
#include "packet_log.h"

namespace portier {

inline constexpr const char* kBusName = "org.portier.Firewall1";
inline constexpr const char* kObjectPath = "/org/portier/Firewall1";
inline constexpr const char* kPolkitAction = "org.portier.Firewall1.manage";

/// Error names carried by D-Bus replies; the CLI shows their messages as they are.
namespace bus_error {
inline constexpr const char* kAccessDenied = "org.portier.Firewall1.Error.AccessDenied";
inline constexpr const char* kNoSuchRule = "org.portier.Firewall1.Error.NoSuchRule";
inline constexpr const char* kNoSuchSet = "org.portier.Firewall1.Error.NoSuchSet";
inline constexpr const char* kInvalidPolicy = "org.portier.Firewall1.Error.InvalidPolicy";
inline constexpr const char* kKernelRefused = "org.portier.Firewall1.Error.KernelRefused";
inline constexpr const char* kInvalidArgument = "org.portier.Firewall1.Error.InvalidArgument";
inline constexpr const char* kNotPending = "org.portier.Firewall1.Error.NotPending";
inline constexpr const char* kFailed = "org.portier.Firewall1.Error.Failed";
}  // namespace bus_error

using Options = std::map<std::string, sdbus::Variant>;
using RuleEntry = sdbus::Struct<std::string, bool, std::string, std::string, std::string, uint64_t, uint64_t>;

class FirewallService final : public sdbus::AdaptorInterfaces<org::portier::Firewall1_adaptor>,
                              public FirewallEvents {
 public:
  FirewallService(sdbus::IConnection& connection, Firewall& firewall);
  ~FirewallService();

  /// Reload from outside the bus (SIGHUP); failures are logged, not thrown.
  void reload_logged();

  // FirewallEvents
  void applied(std::uint64_t generation, std::string_view reason) override;
  void rule_changed(const std::string& name, bool enabled) override;
  void confirm_pending(std::uint32_t seconds) override;
  void rolled_back(std::string_view reason) override;
  void drift_repaired(const std::string& what) { emitDriftRepaired(what); }

  /// Relays a packet from the policy's nflog group as PacketLogged and one line on
  /// stderr; beyond 50 a second they are only counted (see flush_packet_log()).
  void emit_packet_logged(const LoggedPacket& packet);
  /// Reports the packets left out once their second is over; returns when it has to be
  /// called next (nullopt: nothing waits), for the poll timeout.
  std::optional<std::chrono::steady_clock::time_point> flush_packet_log();

 private:
  std::map<std::string, sdbus::Variant> GetStatus() override;
  std::vector<RuleEntry> ListRules() override;
  void SetRuleEnabled(const std::string& name, const bool& enabled, const Options& options) override;
  void Reload() override;
  std::tuple<bool, std::string> Check(const std::string& text, const std::string& file_name) override;
  uint64_t Apply(const std::string& path, const Options& options) override;
  void Confirm() override;
  void Rollback() override;
  std::string AddTimedRule(const Options& rule) override;
  void RemoveTimedRule(const std::string& name) override;
  void AddSetElements(const std::string& set, const std::vector<std::string>& elements,
                      const Options& options) override;
  void RemoveSetElements(const std::string& set, const std::vector<std::string>& elements) override;
  std::vector<std::string> ListSetElements(const std::string& set) override;
  void SetPanic(const bool& on, const Options& options) override;
  std::string GetRuleset() override;
  std::map<std::string, sdbus::Variant> Explain(const std::vector<std::string>& words) override;
  std::vector<std::map<std::string, sdbus::Variant>> ListPorts() override;
  std::string Version() override;
  std::string PolicyPath() override;
  std::string Mode() override;
  uint64_t Generation() override;
  uint64_t LastApplied() override;

  /// Throws AccessDenied unless the caller is root or polkit grants kPolkitAction.
  void require_admin(std::string_view action);
  enum class PolkitAnswer { yes, no, needs_authentication, absent };
  /// Whether polkit grants kPolkitAction to the bus client `sender`, without interaction.
  PolkitAnswer ask_polkit(const std::string& sender);

  Firewall& firewall_;
  sdbus::IConnection& connection_;
  PacketLogLimiter packet_limiter_;
  // The verdict word of each rule's log lines, for the generation they were taken from.
  std::map<std::string, std::string, std::less<>> rule_verdicts_;
  std::optional<std::uint64_t> rule_verdicts_generation_;
};

}  // namespace portier
