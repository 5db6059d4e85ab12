// Every listening TCP socket and bound UDP socket of the host, read with
// NETLINK_SOCK_DIAG, with the process, user and systemd unit behind each.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ruleset.h"

namespace portier {

struct ListeningSocket {
  ir::L4Proto protocol = ir::L4Proto::tcp;
  ir::Family family = ir::Family::ipv4;
  ir::Address address;  // all zero: the wildcard address
  std::uint16_t port = 0;
  bool v6_only = false;          // an IPv6 wildcard socket that does not take IPv4
  std::uint64_t inode = 0;
  std::uint32_t uid = 0;
  std::string user;              // from the uid; empty if unknown
  std::uint32_t pid = 0;         // 0 if no process could be found
  std::string process;           // comm of the process
  std::string cgroup;            // cgroup v2 path of the process, relative to the root
  std::string unit;              // systemd unit from the cgroup path; empty if none
};

/// Reads the sockets of the current network namespace (and the processes of the current
/// PID namespace, to find owners). Throws std::runtime_error if sock_diag fails.
std::vector<ListeningSocket> list_listening_sockets();

}  // namespace portier
