#include "cgroup_owner.h"

#include <algorithm>

namespace portier {

std::vector<std::string_view> cgroup_path_parts(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    std::size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (!part.empty()) parts.push_back(part);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  return parts;
}

namespace {

std::string joined(const std::vector<std::string_view>& parts, std::size_t count) {
  std::string path;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) path += '/';
    path += parts[i];
  }
  return path;
}

}  // namespace

std::optional<std::string> owner_cgroup_in(const ir::CgroupOwner& owner, std::string_view path) {
  const std::vector<std::string_view> parts = cgroup_path_parts(path);
  if (owner.unit.empty()) {
    const std::vector<std::string_view> own = cgroup_path_parts(owner.path);
    if (own.empty() || own.size() > parts.size()) return std::nullopt;
    for (std::size_t i = 0; i < own.size(); ++i)
      if (own[i] != parts[i]) return std::nullopt;
    return joined(parts, own.size());
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == owner.unit) return joined(parts, i + 1);
    if (!parts[i].ends_with(".slice")) return std::nullopt;
  }
  return std::nullopt;
}

std::string describe(const ir::CgroupOwner& owner) {
  return owner.unit.empty() ? "cgroup " + owner.path : owner.unit;
}

namespace {

std::string child_path(const std::string& parent, const std::string& name) {
  return parent.empty() ? name : parent + "/" + name;
}

// Depth first through the slices below `slice`, calling `visit` with each slice's path.
template <typename Visit>
void each_slice(const CgroupTree& tree, const std::string& slice, Visit&& visit, int depth = 0) {
  visit(slice);
  // A slice's depth is bounded by its name (a-b-c.slice is in a.slice/a-b.slice); the bound
  // only guards against a tree that changes into a loop under a fake.
  if (depth > 64) return;
  for (const std::string& name : tree.children(slice))
    if (name.ends_with(".slice")) each_slice(tree, child_path(slice, name), visit, depth + 1);
}

}  // namespace

std::optional<ir::CgroupMember> locate(const CgroupTree& tree, const ir::CgroupOwner& owner) {
  if (owner.unit.empty()) {
    if (owner.path.empty()) return std::nullopt;
    if (auto id = tree.id(owner.path)) return ir::CgroupMember{owner.path, *id};
    return std::nullopt;
  }
  std::optional<ir::CgroupMember> found;
  each_slice(tree, "", [&](const std::string& slice) {
    if (found) return;
    for (const std::string& name : tree.children(slice)) {
      if (name != owner.unit) continue;
      std::string path = child_path(slice, name);
      if (auto id = tree.id(path)) found = ir::CgroupMember{path, *id};
      return;
    }
  });
  return found;
}

std::vector<std::string> cgroups_to_watch(const CgroupTree& tree,
                                          const std::vector<ir::CgroupOwner>& owners) {
  std::vector<std::string> watch;
  bool units = false;
  for (const ir::CgroupOwner& owner : owners) {
    if (!owner.unit.empty()) {
      units = true;
      continue;
    }
    std::string ancestor;
    watch.push_back(ancestor);
    const std::vector<std::string_view> parts = cgroup_path_parts(owner.path);
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      ancestor = child_path(ancestor, std::string(parts[i]));
      if (!tree.id(ancestor)) break;
      watch.push_back(ancestor);
    }
  }
  if (units) each_slice(tree, "", [&](const std::string& slice) { watch.push_back(slice); });
  std::sort(watch.begin(), watch.end());
  watch.erase(std::unique(watch.begin(), watch.end()), watch.end());
  return watch;
}

}  // namespace portier
