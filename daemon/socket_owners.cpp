#include "socket_owners.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace portier {
namespace fs = std::filesystem;

namespace {

std::optional<std::uint64_t> number(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string read_text(const fs::path& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// getpwuid_r with a buffer grown on ERANGE; empty when the uid has no entry.
std::string user_name(std::uint32_t uid) {
  std::vector<char> buffer(1024);
  for (;;) {
    passwd entry{};
    passwd* found = nullptr;
    int error = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    return error == 0 && found ? std::string(found->pw_name) : std::string();
  }
}

}  // namespace

std::optional<std::uint64_t> socket_inode_of_link(std::string_view link) {
  constexpr std::string_view prefix = "socket:[";
  if (!link.starts_with(prefix) || !link.ends_with(']')) return std::nullopt;
  return number(link.substr(prefix.size(), link.size() - prefix.size() - 1));
}

std::string cgroup_of_process(std::string_view proc_cgroup) {
  // cgroups(7): one `HIERARCHY-ID:CONTROLLERS:PATH` line per hierarchy; v2 is `0::PATH`.
  while (!proc_cgroup.empty()) {
    std::size_t end = proc_cgroup.find('\n');
    std::string_view line = proc_cgroup.substr(0, end);
    proc_cgroup = end == std::string_view::npos ? std::string_view() : proc_cgroup.substr(end + 1);
    if (!line.starts_with("0::")) continue;
    line.remove_prefix(3);
    while (line.starts_with('/')) line.remove_prefix(1);
    return std::string(line);
  }
  return {};
}

std::string unit_of_cgroup(std::string_view cgroup) {
  // The innermost unit: a service's own sub-cgroups (ssh.service/sub) still belong to it,
  // and user@1000.service/app.slice/x.scope belongs to x.scope.
  std::string unit;
  std::size_t start = 0;
  while (start <= cgroup.size()) {
    std::size_t end = cgroup.find('/', start);
    std::string_view component =
        cgroup.substr(start, end == std::string_view::npos ? end : end - start);
    if (component.ends_with(".service") || component.ends_with(".socket") ||
        component.ends_with(".scope"))
      unit = component;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return unit;
}

std::map<std::uint64_t, std::uint32_t> socket_holders(const std::string& proc_root) {
  std::map<std::uint64_t, std::uint32_t> holders;
  std::error_code error;
  for (const fs::directory_entry& process : fs::directory_iterator(proc_root, error)) {
    auto pid = number(process.path().filename().string());
    if (!pid || *pid > UINT32_MAX) continue;
    // Processes exit and fds close while we look, and the fds of processes we may not
    // ptrace cannot be read: each of those is just skipped.
    std::error_code fd_error;
    for (const fs::directory_entry& fd : fs::directory_iterator(process.path() / "fd", fd_error)) {
      std::error_code link_error;
      fs::path target = fs::read_symlink(fd.path(), link_error);
      if (link_error) continue;
      auto inode = socket_inode_of_link(target.native());
      if (!inode) continue;
      auto [it, inserted] = holders.emplace(*inode, static_cast<std::uint32_t>(*pid));
      if (!inserted) it->second = std::min(it->second, static_cast<std::uint32_t>(*pid));
    }
  }
  return holders;
}

void fill_socket_owners(std::vector<ListeningSocket>& sockets, const std::string& proc_root) {
  const std::map<std::uint64_t, std::uint32_t> holders = socket_holders(proc_root);
  std::map<std::uint32_t, std::string> users;
  for (ListeningSocket& socket : sockets) {
    if (auto it = holders.find(socket.inode); it != holders.end()) {
      socket.pid = it->second;
      fs::path process = fs::path(proc_root) / std::to_string(socket.pid);
      socket.process = read_text(process / "comm");
      if (socket.process.ends_with('\n')) socket.process.pop_back();
      if (socket.cgroup.empty()) socket.cgroup = cgroup_of_process(read_text(process / "cgroup"));
    }
    socket.unit = unit_of_cgroup(socket.cgroup);
    auto [user, inserted] = users.emplace(socket.uid, std::string());
    if (inserted) user->second = user_name(socket.uid);
    socket.user = user->second;
  }
}

std::map<std::uint64_t, std::string> cgroup_paths(const std::string& root,
                                                  const std::vector<std::uint64_t>& wanted) {
  std::map<std::uint64_t, std::string> paths;
  std::set<std::uint64_t> missing(wanted.begin(), wanted.end());
  if (root.empty() || missing.empty()) return paths;
  struct stat status {};
  // The root cgroup: sockets of processes that were never moved anywhere.
  if (::stat(root.c_str(), &status) == 0 && missing.erase(status.st_ino)) paths[status.st_ino] = "";
  std::error_code error;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, error);
  for (; !error && it != fs::recursive_directory_iterator() && !missing.empty();
       it.increment(error)) {
    std::error_code type_error;
    if (!it->is_directory(type_error) || it->is_symlink(type_error)) continue;
    if (::stat(it->path().c_str(), &status) != 0) continue;
    if (missing.erase(status.st_ino))
      paths[status.st_ino] = fs::relative(it->path(), root, type_error).string();
  }
  return paths;
}

}  // namespace portier
