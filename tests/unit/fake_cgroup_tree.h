// A cgroup tree for unit tests: paths and their ids, changed by hand.
#pragma once

#include <map>
#include <string>

#include "cgroup_owner.h"

namespace portier::testing {

/// The root always exists (id 1); every other cgroup exists once made, whatever its parents.
class FakeTree final : public CgroupTree {
 public:
  void make(const std::string& path, std::uint64_t id) { ids[path] = id; }
  void remove(const std::string& path) { ids.erase(path); }
  std::optional<std::uint64_t> id(const std::string& path) const override {
    if (path.empty()) return 1;
    auto found = ids.find(path);
    if (found == ids.end()) return std::nullopt;
    return found->second;
  }
  std::vector<std::string> children(const std::string& path) const override {
    std::vector<std::string> names;
    const std::string prefix = path.empty() ? "" : path + "/";
    for (const auto& [candidate, id] : ids) {
      if (!candidate.starts_with(prefix)) continue;
      std::string rest = candidate.substr(prefix.size());
      if (!rest.empty() && rest.find('/') == std::string::npos) names.push_back(rest);
    }
    return names;
  }
  std::map<std::string, std::uint64_t> ids;
};

}  // namespace portier::testing
