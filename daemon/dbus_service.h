// The D-Bus edge of portierd: org.portier.Firewall1 on /org/portier/Firewall1.
// Translates calls into Firewall operations, failures into named D-Bus errors, and
// Firewall events into signals. A thin adaptor: each method checks its arguments, makes one
// call into the core (Firewall, inspect.h) and converts the result; the names it uses are
// those of api/firewall1_api.h, which portierctl shares.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <memory>
#include <optional>

#include "firewall.h"
#include "firewall1_adaptor.h"
#include "firewall1_api.h"
#include "packet_log.h"
#include "packet_verdicts.h"
#include "polkit_authority.h"
#include "saved_replies.h"

namespace portier {

using Options = std::map<std::string, sdbus::Variant>;
using RuleEntry = sdbus::Struct<std::string, bool, std::string, std::string, std::string, uint64_t, uint64_t>;

class FirewallService final : public sdbus::AdaptorInterfaces<org::portier::Firewall1_adaptor>,
                              public FirewallEvents {
 public:
  FirewallService(sdbus::IConnection& connection, Firewall& firewall);
  ~FirewallService();

  /// Reload from outside the bus (SIGHUP); failures are logged, not thrown.
  void reload_logged();
  /// Answers the calls whose changes the state writer has now written (Firewall::state_fd()
  /// became readable).
  void answer_saved();

  // FirewallEvents
  void applied(std::uint64_t generation, std::string_view reason) override;
  void rule_changed(const std::string& name, bool enabled) override;
  void confirm_pending(std::uint32_t seconds) override;
  void rolled_back(std::string_view reason) override;
  void owner_changed(const OwnerStatus& owner) override;
  void drift_repaired(const std::string& what) { emitDriftRepaired(what); }

  /// Relays a packet from the policy's nflog group as PacketLogged and one line on
  /// stderr; beyond 50 a second they are only counted (see flush_packet_log()).
  void emit_packet_logged(const LoggedPacket& packet);
  /// Reports the packets left out once their second is over; returns when it has to be
  /// called next (nullopt: nothing waits), for the poll timeout.
  std::optional<std::chrono::steady_clock::time_point> flush_packet_log();
  /// Cancels the polkit checks of callers that left, once they are due
  /// (PolkitAuthority::cancel_due()); returns when it has to be called next.
  std::optional<std::chrono::steady_clock::time_point> cancel_due_polkit_checks() {
    return polkit_.cancel_due(std::chrono::steady_clock::now());
  }

 private:
  std::map<std::string, sdbus::Variant> GetStatus() override;
  std::vector<RuleEntry> ListRules() override;
  // The methods that change the firewall (and ListPorts, which shows other users'
  // processes) answer once the caller is authorized, which with polkit can take a while.
  void SetRuleEnabled(sdbus::Result<>&& result, std::string name, bool enabled,
                      Options options) override;
  void Reload(sdbus::Result<>&& result) override;
  std::tuple<bool, std::string> Check(const std::string& text, const std::string& file_name) override;
  void Apply(sdbus::Result<uint64_t>&& result, std::string path, Options options) override;
  void Confirm(sdbus::Result<>&& result) override;
  void Rollback(sdbus::Result<>&& result) override;
  void AddTimedRule(sdbus::Result<std::string>&& result, Options rule) override;
  void RemoveTimedRule(sdbus::Result<>&& result, std::string name) override;
  void AddSetElements(sdbus::Result<>&& result, std::string set, std::vector<std::string> elements,
                      Options options) override;
  void RemoveSetElements(sdbus::Result<>&& result, std::string set,
                         std::vector<std::string> elements) override;
  std::vector<std::string> ListSetElements(const std::string& set) override;
  void SetPanic(sdbus::Result<>&& result, bool on, Options options) override;
  std::string GetRuleset() override;
  std::map<std::string, sdbus::Variant> Explain(const std::vector<std::string>& words) override;
  void ListPorts(
      sdbus::Result<std::vector<std::map<std::string, sdbus::Variant>>>&& result) override;
  std::string Version() override;
  std::string PolicyPath() override;
  std::string Mode() override;
  uint64_t Generation() override;
  uint64_t LastApplied() override;

  /// Runs `change` for the caller of the method being processed once it may change the
  /// firewall: at once for root, when polkit grants kPolkitAction otherwise. The reply
  /// goes out then: what `change` returns, the named error it throws, or AccessDenied.
  template <typename... Results, typename Change>
  void when_authorized(sdbus::Result<Results...>&& result, std::string_view what, Change change);

  template <typename... Results, typename Change>
  void reply_when_saved(sdbus::Result<Results...>& result, Change& change);

  Firewall& firewall_;
  PolkitAuthority polkit_;
  SavedReplies saved_replies_;
  PacketLogLimiter packet_limiter_;
  PacketVerdicts packet_verdicts_;
};

}  // namespace portier
