// The live cgroup v2 hierarchy: where it is mounted, what is in it, and a watch that tells
// when cgroups come and go below the directories the binds depend on.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cgroup_owner.h"

namespace portier {

/// The mount point of the cgroup v2 hierarchy (/sys/fs/cgroup on a unified system,
/// /sys/fs/cgroup/unified on a hybrid one), from /proc/self/mountinfo; empty if none.
std::string find_cgroup2_root(const std::string& mountinfo_path = "/proc/self/mountinfo");

/// The cgroup tree below a cgroup2 mount point, read with stat() and readdir(). With no
/// mount point (empty root) it is empty: no cgroup exists, so bound ports are closed.
class LiveCgroupTree : public CgroupTree {
 public:
  explicit LiveCgroupTree(std::string root) : root_(std::move(root)) {}
  std::optional<std::uint64_t> id(const std::string& path) const override;
  std::vector<std::string> children(const std::string& path) const override;
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

/// inotify on cgroup directories: the kernel reports mkdir and rmdir of cgroups as
/// IN_CREATE and IN_DELETE in their parent (cgroupfs is kernfs, which feeds fsnotify).
/// Nothing is polled; the fd becomes readable when something changed.
class CgroupWatch {
 public:
  explicit CgroupWatch(std::string root);
  ~CgroupWatch();
  CgroupWatch(const CgroupWatch&) = delete;
  CgroupWatch& operator=(const CgroupWatch&) = delete;

  /// Watches `paths` (relative to the root) as well as what is watched already; a path
  /// that went away is dropped by the kernel itself (IN_IGNORED).
  void watch(const std::vector<std::string>& paths);
  /// -1 if inotify could not be had (then nothing is followed; portierd says so).
  int fd() const { return fd_; }
  /// Reads what is pending; true if a cgroup was made or removed in a watched directory.
  bool read_changes();
  std::size_t watched() const { return watches_.size(); }

 private:
  std::string root_;
  int fd_ = -1;
  std::map<int, std::string> watches_;  // watch descriptor -> path
};

}  // namespace portier
