#include "host_interfaces.h"

#include <net/if.h>

#include <memory>

namespace portier {

std::vector<std::string> host_interface_names() {
  std::vector<std::string> names;
  std::unique_ptr<struct if_nameindex, decltype(&if_freenameindex)> list(if_nameindex(),
                                                                         if_freenameindex);
  if (!list) return names;
  for (const struct if_nameindex* entry = list.get(); entry->if_index != 0; ++entry)
    names.emplace_back(entry->if_name);
  return names;
}

}  // namespace portier
