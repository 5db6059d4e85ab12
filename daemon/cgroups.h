// Where the cgroup v2 hierarchy is, and the ids the kernel compares `socket cgroupv2` with.
#pragma once

#include <stdexcept>
#include <string>

#include "ruleset.h"

namespace portier {

/// The mount point of the cgroup v2 hierarchy (/sys/fs/cgroup on a unified system,
/// /sys/fs/cgroup/unified on a hybrid one), from /proc/self/mountinfo; empty if none.
std::string find_cgroup2_root(const std::string& mountinfo_path = "/proc/self/mountinfo");

/// A cgroup a rule or bind names is not there (yet).
struct MissingCgroup : std::runtime_error {
  MissingCgroup(std::string owner_name, const std::string& message)
      : std::runtime_error(message), owner(std::move(owner_name)) {}
  std::string owner;  // the rule or bind (the kernel rule's comment)
};

/// Fills in the id of every SocketCgroup match from the directory's inode number under
/// `root`. A missing cgroup throws MissingCgroup: units may start after the policy was
/// written, so this is an apply-time error, not a parse error.
void resolve_socket_cgroups(ir::Ruleset& ruleset, const std::string& root);

}  // namespace portier
