#include "cgroups.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace portier {

std::string find_cgroup2_root(const std::string& mountinfo_path) {
  // mountinfo(5): ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
  std::ifstream mountinfo(mountinfo_path);
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mount_point, word;
    fields >> id >> parent >> device >> root >> mount_point;
    while (fields >> word && word != "-") {
    }
    std::string fstype;
    if (fields >> fstype && fstype == "cgroup2") return mount_point;
  }
  return {};
}

void resolve_socket_cgroups(ir::Ruleset& ruleset, const std::string& root) {
  for (ir::Chain& chain : ruleset.chains) {
    for (ir::Rule& rule : chain.rules) {
      for (ir::Match& match : rule.matches) {
        auto* cgroup = std::get_if<ir::SocketCgroup>(&match);
        if (!cgroup) continue;
        if (root.empty())
          throw MissingCgroup(rule.comment, "cgroup v2 is not mounted, so socket owners cannot be checked");
        std::string path = root + "/" + cgroup->path;
        struct stat status {};
        int failure = ::stat(path.c_str(), &status) != 0 ? errno : S_ISDIR(status.st_mode) ? 0 : ENOTDIR;
        if (failure != 0)
          throw MissingCgroup(rule.comment, "cgroup " + cgroup->path + " does not exist under " + root +
                                                " (" + std::strerror(failure) + "): is the unit running?");
        // cgroup v2 ids are the kernfs inode numbers of the directories.
        cgroup->id = status.st_ino;
      }
    }
  }
}

}  // namespace portier
