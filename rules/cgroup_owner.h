// Where a socket owner's cgroup is in a cgroup path, as systemd lays the tree out. Pure:
// the daemon uses it to find a unit in the live tree, explain and `ports` to tell whether
// a socket's cgroup belongs to a bind's owner.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ruleset.h"

namespace portier {

/// The parts of a cgroup path ("system.slice/ssh.service" -> {"system.slice", "ssh.service"}).
std::vector<std::string_view> cgroup_path_parts(std::string_view path);

/// The cgroup of `owner` that the cgroup `path` is (or is inside), if any. A unit's cgroup
/// is named like the unit and sits below slices only (system.slice/ssh.service,
/// system.slice/system-getty.slice/getty@tty1.service, user.slice/user-1000.slice/...);
/// what is below it belongs to the unit. A cgroup owner's is its path.
std::optional<std::string> owner_cgroup_in(const ir::CgroupOwner& owner, std::string_view path);

/// Says who an owner is: "ssh.service" or "cgroup web/allowed".
std::string describe(const ir::CgroupOwner& owner);

/// The cgroup v2 hierarchy as seen from here: a port, with the live tree in the daemon
/// (daemon/cgroups.h) and a fake in tests. Paths are relative to the root ("" is the root).
class CgroupTree {
 public:
  /// The id of the cgroup at `path` (its kernfs inode number); none if there is none.
  virtual std::optional<std::uint64_t> id(const std::string& path) const = 0;
  /// The names of the cgroups directly below `path`; empty if there is none.
  virtual std::vector<std::string> children(const std::string& path) const = 0;
  virtual ~CgroupTree() = default;
};

/// Where `owner`'s cgroup is now, if it exists: a unit is looked for below the root and
/// its slices (systemd puts every unit in a slice; nothing below a unit is a unit of the
/// system's), a cgroup owner at its path.
std::optional<ir::CgroupMember> locate(const CgroupTree& tree, const ir::CgroupOwner& owner);

/// The cgroups to watch for children coming and going, so that each owner is noticed when
/// its cgroup appears, goes or is made anew: the root and every slice for units, every
/// existing ancestor of a cgroup owner's path. Sorted, without repeats.
std::vector<std::string> cgroups_to_watch(const CgroupTree& tree,
                                          const std::vector<ir::CgroupOwner>& owners);

}  // namespace portier
