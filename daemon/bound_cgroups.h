// The cgroupv2 sets of the loaded ruleset, kept holding their owners' cgroups while units
// start, stop and restart: which sets must change, and since when each holds what it holds.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cgroup_owner.h"
#include "ruleset.h"
#include "runtime_state.h"

namespace portier {

/// One set whose owner's cgroup is not what the set holds: the set goes from `before` to
/// `after` (each empty or one cgroup).
struct CgroupChange {
  std::string set;
  ir::CgroupOwner owner;
  std::vector<ir::CgroupMember> before;
  std::vector<ir::CgroupMember> after;
};

class BoundCgroups {
 public:
  /// `tree` may be null: then no owner's cgroup is ever found (nobody serves bound ports).
  BoundCgroups(const CgroupTree* tree, std::function<Clock::time_point()> now)
      : tree_(tree), now_(std::move(now)) {}

  /// Puts where each owner is now into the cgroupv2 sets of `ruleset`.
  void fill(ir::Ruleset& ruleset) const;
  /// The sets of `loaded` that no longer hold where their owners are.
  std::vector<CgroupChange> changes(const ir::Ruleset& loaded) const;
  /// The cgroups to watch so that every owner of `loaded` is noticed (cgroups_to_watch).
  std::vector<std::string> to_watch(const ir::Ruleset& loaded) const;

  /// Notes that `loaded` is now in the kernel: a set that holds something other than
  /// before (or is new) counts as changed now.
  void loaded(const ir::Ruleset& loaded);
  /// When the set last changed what it holds; none for a set never loaded.
  std::optional<Clock::time_point> since(const std::string& set) const;

 private:
  std::vector<ir::CgroupMember> where(const ir::CgroupOwner& owner) const;

  const CgroupTree* tree_;
  std::function<Clock::time_point()> now_;
  struct Held {
    std::vector<ir::CgroupMember> cgroups;
    Clock::time_point since;
  };
  std::map<std::string, Held> held_;  // by set name
};

}  // namespace portier
