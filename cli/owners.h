// The socket owners of binds and `unit =` rules as GetStatus reports them ("owners"), for
// `status` and `rules`.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace portier::cli {

struct Owner {
  std::string kind;  // bind or rule
  std::string name;
  std::string owner;  // ssh.service, or cgroup PATH
  bool running = false;
  std::string cgroup;
  std::uint64_t cgroup_id = 0;
  std::uint64_t since_usec = 0;  // 0: unknown
};

std::vector<Owner> owners_of(const std::map<std::string, sdbus::Variant>& status);

/// "running (cgroup system.slice/ssh.service, id 1234)" or "not running: its ports are closed".
std::string owner_state(const Owner& owner);

/// A local time as status prints it.
std::string format_time(std::uint64_t usec);

}  // namespace portier::cli
