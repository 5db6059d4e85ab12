#include "owners.h"

#include <ctime>

#include "firewall1_api.h"

namespace portier::cli {

std::vector<Owner> owners_of(const std::map<std::string, sdbus::Variant>& status) {
  using Entry =
      sdbus::Struct<std::string, std::string, std::string, bool, std::string, uint64_t, uint64_t>;
  std::vector<Owner> owners;
  auto it = status.find(bus_key::status::kOwners);
  // An older portierd has no owners: nothing to show.
  if (it == status.end() || !it->second.containsValueOfType<std::vector<Entry>>()) return owners;
  for (const Entry& entry : it->second.get<std::vector<Entry>>())
    owners.push_back({entry.get<0>(), entry.get<1>(), entry.get<2>(), entry.get<3>(),
                      entry.get<4>(), entry.get<5>(), entry.get<6>()});
  return owners;
}

std::string owner_state(const Owner& owner) {
  if (!owner.running) return "not running: its ports are closed";
  return "running (cgroup " + owner.cgroup + ", id " + std::to_string(owner.cgroup_id) + ")";
}

std::string format_time(std::uint64_t usec) {
  std::time_t seconds = static_cast<std::time_t>(usec / 1000000);
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S %Z", &local);
  return text;
}

}  // namespace portier::cli
