// The host's network interfaces, as the Firewall's interfaces port (FirewallOptions)
// wants them; unit tests give the Firewall a list of their own instead.
#pragma once

#include <string>
#include <vector>

namespace portier {

/// The names of this network namespace's interfaces (if_nameindex: one netlink dump);
/// empty when they cannot be listed.
std::vector<std::string> host_interface_names();

}  // namespace portier
