#include "cgroups.h"

#include <dirent.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
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

namespace {

std::string full_path(const std::string& root, const std::string& path) {
  return path.empty() ? root : root + "/" + path;
}

}  // namespace

std::optional<std::uint64_t> LiveCgroupTree::id(const std::string& path) const {
  if (root_.empty()) return std::nullopt;
  struct stat status {};
  if (::stat(full_path(root_, path).c_str(), &status) != 0 || !S_ISDIR(status.st_mode))
    return std::nullopt;
  // cgroup v2 ids, which `socket cgroupv2` compares, are the kernfs inode numbers.
  return static_cast<std::uint64_t>(status.st_ino);
}

std::vector<std::string> LiveCgroupTree::children(const std::string& path) const {
  std::vector<std::string> names;
  if (root_.empty()) return names;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(full_path(root_, path).c_str()), ::closedir);
  if (!dir) return names;
  while (const dirent* entry = ::readdir(dir.get())) {
    // Every directory of cgroupfs is a cgroup; its files are the controllers' knobs.
    if (entry->d_type != DT_DIR || entry->d_name[0] == '.') continue;
    names.emplace_back(entry->d_name);
  }
  return names;
}

CgroupWatch::CgroupWatch(std::string root) : root_(std::move(root)) {
  if (root_.empty()) return;
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0)
    std::fprintf(stderr, "portierd: inotify: %s: binds do not follow their units\n",
                 std::strerror(errno));
}

CgroupWatch::~CgroupWatch() {
  if (fd_ >= 0) ::close(fd_);
}

void CgroupWatch::watch(const std::vector<std::string>& paths) {
  if (fd_ < 0) return;
  for (const std::string& path : paths) {
    // The same directory gives the same descriptor: watching twice is harmless.
    int wd = ::inotify_add_watch(fd_, full_path(root_, path).c_str(),
                                 IN_CREATE | IN_DELETE | IN_ONLYDIR);
    if (wd >= 0) watches_[wd] = path;
  }
}

bool CgroupWatch::read_changes() {
  if (fd_ < 0) return false;
  bool changed = false;
  alignas(inotify_event) char buffer[16384];
  for (;;) {
    ssize_t length = ::read(fd_, buffer, sizeof buffer);
    if (length <= 0) break;  // EAGAIN: all read
    for (ssize_t offset = 0; offset < length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
      if (event->mask & IN_IGNORED) watches_.erase(event->wd);
      // Only directories are cgroups; IN_Q_OVERFLOW means some events were lost.
      if ((event->mask & (IN_CREATE | IN_DELETE)) && (event->mask & IN_ISDIR)) changed = true;
      if (event->mask & IN_Q_OVERFLOW) changed = true;
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  return changed;
}

}  // namespace portier
