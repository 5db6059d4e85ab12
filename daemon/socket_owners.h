// Who is behind a socket: the process holding it (from /proc), its cgroup v2 path and
// systemd unit, and the user name of the socket's uid.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "listening_sockets.h"

namespace portier {

/// The inode of a /proc/PID/fd link text `socket:[12345]`; nullopt for anything else.
std::optional<std::uint64_t> socket_inode_of_link(std::string_view link);

/// The cgroup v2 path in the text of /proc/PID/cgroup (its `0::/path` line), without the
/// leading '/'; empty for the root or when there is no such line.
std::string cgroup_of_process(std::string_view proc_cgroup);

/// The systemd unit a cgroup path belongs to: its last component ending in .service,
/// .socket or .scope (`system.slice/ssh.service` -> `ssh.service`); empty if none.
std::string unit_of_cgroup(std::string_view cgroup);

/// For each socket inode, the pid of a process holding it, from one pass over
/// `proc_root`/*/fd. Several processes share a socket after fork: the lowest pid wins
/// (usually the parent that opened it). Processes whose fds cannot be read are skipped.
std::map<std::uint64_t, std::uint32_t> socket_holders(const std::string& proc_root);

/// Fills pid, process, cgroup (unless already set) and unit of each socket from
/// `proc_root`, and user from the uid.
void fill_socket_owners(std::vector<ListeningSocket>& sockets, const std::string& proc_root);

/// Maps cgroup ids (directory inode numbers) to paths relative to `root` by walking the
/// cgroup v2 hierarchy mounted there, for the ids in `wanted` only.
std::map<std::uint64_t, std::string> cgroup_paths(const std::string& root,
                                                  const std::vector<std::uint64_t>& wanted);

}  // namespace portier
