// The D-Bus edge of portierd: org.portier.Firewall1 on /org/portier/Firewall1.
// Translates calls into Firewall operations and failures into named D-Bus errors.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <memory>

#include "firewall.h"
#include "firewall1_adaptor.h"

namespace portier {

inline constexpr const char* kBusName = "org.portier.Firewall1";
inline constexpr const char* kObjectPath = "/org/portier/Firewall1";

/// Error names carried by D-Bus replies; the CLI shows their messages as they are.
namespace bus_error {
inline constexpr const char* kAccessDenied = "org.portier.Firewall1.Error.AccessDenied";
inline constexpr const char* kNoSuchRule = "org.portier.Firewall1.Error.NoSuchRule";
inline constexpr const char* kInvalidPolicy = "org.portier.Firewall1.Error.InvalidPolicy";
inline constexpr const char* kKernelRefused = "org.portier.Firewall1.Error.KernelRefused";
inline constexpr const char* kInvalidArgument = "org.portier.Firewall1.Error.InvalidArgument";
}  // namespace bus_error

class FirewallService final : public sdbus::AdaptorInterfaces<org::portier::Firewall1_adaptor> {
 public:
  FirewallService(sdbus::IConnection& connection, Firewall& firewall);
  ~FirewallService();

  /// Reload from outside the bus (SIGHUP); failures are logged, not thrown.
  void reload_logged();

 private:
  std::map<std::string, sdbus::Variant> GetStatus() override;
  std::vector<sdbus::Struct<std::string, bool, std::string, std::string, std::string, uint64_t,
                            uint64_t>>
  ListRules() override;
  void SetRuleEnabled(const std::string& name, const bool& enabled) override;
  void Reload() override;
  std::string Version() override;
  std::string PolicyPath() override;
  uint64_t Generation() override;

  void require_admin(std::string_view action);
  template <typename Operation>
  void change(std::string_view action, Operation&& operation);

  Firewall& firewall_;
};

}  // namespace portier
