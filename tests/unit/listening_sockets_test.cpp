// The sock_diag codec from hand-built reply bytes, and the /proc owner lookup from a fake
// /proc tree: no netlink socket, no root.
#include <doctest/doctest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "netlink_fixtures.h"
#include "sock_diag.h"
#include "socket_owners.h"

using namespace portier;
namespace fs = std::filesystem;

namespace {

// A little-endian host is assumed by the literal fixture below (x86-64, arm64).
static_assert(std::endian::native == std::endian::little);

// One SOCK_DIAG_BY_FAMILY message as the kernel sends it for `ss -lt`: a TCP socket
// listening on 0.0.0.0:22, uid 0, inode 12345, in cgroup id 0x1122334455667788, then
// NLMSG_DONE.
const std::uint8_t kTcp4Listen22[] = {
    // nlmsghdr: len 100, type 20 (SOCK_DIAG_BY_FAMILY), flags NLM_F_MULTI, seq 7, pid 0
    100,
    0,
    0,
    0,
    20,
    0,
    2,
    0,
    7,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    // inet_diag_msg: family AF_INET, state TCP_LISTEN (10), timer, retrans
    2,
    10,
    0,
    0,
    // id: sport 22 and dport 0 (big-endian), src 0.0.0.0 (+12 unused), dst (16)
    0,
    22,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    // id: if 0, cookie
    0,
    0,
    0,
    0,
    0x11,
    0x22,
    0x33,
    0x44,
    0,
    0,
    0,
    0,
    // expires, rqueue, wqueue 128 (backlog), uid 0, inode 12345 (0x3039)
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    128,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x39,
    0x30,
    0,
    0,
    // nlattr: len 12, type 21 (INET_DIAG_CGROUP_ID), u64
    12,
    0,
    21,
    0,
    0x88,
    0x77,
    0x66,
    0x55,
    0x44,
    0x33,
    0x22,
    0x11,
    // nlmsghdr: len 20, NLMSG_DONE (3), NLM_F_MULTI, seq 7, pid 0; payload int 0
    20,
    0,
    0,
    0,
    3,
    0,
    2,
    0,
    7,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
};

// Builds reply messages field by field, for the cases the literal fixture does not cover.
struct ReplyBuilder {
  std::vector<std::uint8_t> bytes;

  void append(const void* data, std::size_t size) {
    auto* p = static_cast<const std::uint8_t*>(data);
    bytes.insert(bytes.end(), p, p + size);
    bytes.resize(NLMSG_ALIGN(bytes.size()), 0);
  }

  // A socket message; `attributes` already encoded (type, payload) pairs.
  void socket(std::uint8_t family, std::uint8_t state, std::uint16_t port,
              const std::uint8_t* address, std::uint32_t uid, std::uint32_t inode,
              std::vector<std::pair<std::uint16_t, std::vector<std::uint8_t>>> attributes = {}) {
    inet_diag_msg message{};
    message.idiag_family = family;
    message.idiag_state = state;
    message.id.idiag_sport = htons(port);
    std::memcpy(message.id.idiag_src, address, family == AF_INET ? 4 : 16);
    message.idiag_uid = uid;
    message.idiag_inode = inode;
    std::vector<std::uint8_t> payload(reinterpret_cast<std::uint8_t*>(&message),
                                      reinterpret_cast<std::uint8_t*>(&message) + sizeof message);
    for (auto& [type, data] : attributes) {
      nlattr attr{static_cast<std::uint16_t>(NLA_HDRLEN + data.size()), type};
      payload.insert(payload.end(), reinterpret_cast<std::uint8_t*>(&attr),
                     reinterpret_cast<std::uint8_t*>(&attr) + sizeof attr);
      payload.insert(payload.end(), data.begin(), data.end());
      payload.resize(NLA_ALIGN(payload.size()), 0);
    }
    header(SOCK_DIAG_BY_FAMILY, payload);
  }

  void header(std::uint16_t type, const std::vector<std::uint8_t>& payload) {
    nlmsghdr nlh{static_cast<std::uint32_t>(NLMSG_HDRLEN + payload.size()), type, NLM_F_MULTI, 1,
                 0};
    append(&nlh, sizeof nlh);
    append(payload.data(), payload.size());
  }

  void done() { header(NLMSG_DONE, {0, 0, 0, 0}); }

  void error(int code) {
    nlmsgerr error{};
    error.error = -code;
    std::vector<std::uint8_t> payload(sizeof error);
    std::memcpy(payload.data(), &error, sizeof error);
    header(NLMSG_ERROR, payload);
  }
};

const std::uint8_t kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
const std::uint8_t kAny[16] = {};
const std::uint8_t kHost4[4] = {192, 168, 1, 1};

// A temporary folder removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "portier-owners-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const fs::path& relative, const std::string& text) const {
    fs::create_directories((path / relative).parent_path());
    std::ofstream(path / relative) << text;
  }
  void link(const fs::path& relative, const std::string& target) const {
    fs::create_directories((path / relative).parent_path());
    fs::create_symlink(target, path / relative);
  }
};

}  // namespace

TEST_CASE("sock_diag: a TCP listener on 0.0.0.0:22 from literal reply bytes") {
  SockDiagReply reply = parse_sock_diag_reply(kTcp4Listen22, ir::L4Proto::tcp);
  CHECK(reply.done);
  REQUIRE(reply.sockets.size() == 1);
  const ListeningSocket& socket = reply.sockets[0].socket;
  CHECK(socket.protocol == ir::L4Proto::tcp);
  CHECK(socket.family == ir::Family::ipv4);
  CHECK(socket.address == ir::Address{});
  CHECK(socket.port == 22);
  CHECK(socket.uid == 0);
  CHECK(socket.inode == 12345);
  CHECK_FALSE(socket.v6_only);
  CHECK(reply.sockets[0].cgroup_id == 0x1122334455667788ull);
}

TEST_CASE("sock_diag: the fixture's attribute numbers are the kernel's") {
  CHECK(SOCK_DIAG_BY_FAMILY == 20);
  CHECK(INET_DIAG_CGROUP_ID == 21);
  CHECK(INET_DIAG_SKV6ONLY == 11);
  CHECK(sizeof(inet_diag_msg) == 72);
}

TEST_CASE("sock_diag: IPv6 sockets, IPV6_V6ONLY and bound addresses") {
  ReplyBuilder builder;
  builder.socket(AF_INET6, 10, 8080, kLoopback6, 1000, 77, {{INET_DIAG_SKV6ONLY, {1}}});
  builder.socket(AF_INET6, 10, 443, kAny, 33, 78, {{INET_DIAG_SKV6ONLY, {0}}});
  builder.socket(AF_INET, 10, 53, kHost4, 0, 79);
  SockDiagReply reply = parse_sock_diag_reply(builder.bytes, ir::L4Proto::tcp);
  CHECK_FALSE(reply.done);  // more datagrams to come
  REQUIRE(reply.sockets.size() == 3);

  const ListeningSocket& loop = reply.sockets[0].socket;
  CHECK(loop.family == ir::Family::ipv6);
  CHECK(loop.address.family == ir::Family::ipv6);
  CHECK(loop.address.bytes[15] == 1);
  CHECK(loop.port == 8080);
  CHECK(loop.v6_only);
  CHECK(loop.uid == 1000);
  CHECK(loop.inode == 77);
  CHECK(reply.sockets[0].cgroup_id == 0);  // the kernel did not say

  CHECK_FALSE(reply.sockets[1].socket.v6_only);
  CHECK(reply.sockets[1].socket.address == ir::Address{ir::Family::ipv6, {}});

  const ListeningSocket& bound = reply.sockets[2].socket;
  CHECK(bound.family == ir::Family::ipv4);
  CHECK(bound.address.bytes[0] == 192);
  CHECK(bound.address.bytes[3] == 1);
  CHECK(bound.address.bytes[4] == 0);  // only the first word of idiag_src is IPv4
}

TEST_CASE("sock_diag: UDP sockets not bound to a port are left out") {
  ReplyBuilder builder;
  builder.socket(AF_INET, 7, 0, kAny, 0, 90);
  builder.socket(AF_INET, 7, 5353, kAny, 107, 91);
  builder.done();
  SockDiagReply reply = parse_sock_diag_reply(builder.bytes, ir::L4Proto::udp);
  CHECK(reply.done);
  REQUIRE(reply.sockets.size() == 1);
  CHECK(reply.sockets[0].socket.protocol == ir::L4Proto::udp);
  CHECK(reply.sockets[0].socket.port == 5353);
}

TEST_CASE("sock_diag: an error reply throws with the kernel's errno") {
  ReplyBuilder builder;
  builder.error(EPERM);
  try {
    parse_sock_diag_reply(builder.bytes, ir::L4Proto::udp);
    FAIL("no exception");
  } catch (const std::system_error& failure) {
    CHECK(failure.code().value() == EPERM);
    CHECK(std::string(failure.what()).starts_with("sock_diag dump of UDP sockets: "));
  }
}

TEST_CASE("sock_diag: truncated replies are refused") {
  std::vector<std::uint8_t> cut(std::begin(kTcp4Listen22), std::begin(kTcp4Listen22) + 60);
  CHECK_THROWS_WITH(parse_sock_diag_reply(cut, ir::L4Proto::tcp),
                    "sock_diag: truncated message in reply");
  // A message whose payload is too short for inet_diag_msg.
  ReplyBuilder builder;
  builder.header(SOCK_DIAG_BY_FAMILY, std::vector<std::uint8_t>(16, 0));
  CHECK_THROWS_WITH(parse_sock_diag_reply(builder.bytes, ir::L4Proto::tcp),
                    "sock_diag: reply message shorter than inet_diag_msg");
}

TEST_CASE("sock_diag: the dump request") {
  std::vector<std::uint8_t> bytes = sock_diag_request(ir::L4Proto::udp, ir::Family::ipv6, 42);
  REQUIRE(bytes.size() == sizeof(nlmsghdr) + sizeof(inet_diag_req_v2));
  nlmsghdr nlh;
  std::memcpy(&nlh, bytes.data(), sizeof nlh);
  CHECK(nlh.nlmsg_len == bytes.size());
  CHECK(nlh.nlmsg_type == SOCK_DIAG_BY_FAMILY);
  CHECK(nlh.nlmsg_flags == (NLM_F_REQUEST | NLM_F_DUMP));
  CHECK(nlh.nlmsg_seq == 42);
  inet_diag_req_v2 request;
  std::memcpy(&request, bytes.data() + sizeof nlh, sizeof request);
  CHECK(request.sdiag_family == AF_INET6);
  CHECK(request.sdiag_protocol == IPPROTO_UDP);
  CHECK(request.idiag_states == 1u << 7);  // TCP_CLOSE: bound, not connected

  std::memcpy(&request,
              sock_diag_request(ir::L4Proto::tcp, ir::Family::ipv4, 1).data() + sizeof nlh,
              sizeof request);
  CHECK(request.sdiag_family == AF_INET);
  CHECK(request.sdiag_protocol == IPPROTO_TCP);
  CHECK(request.idiag_states == 1u << 10);  // TCP_LISTEN
}

TEST_CASE("owners: socket links, cgroup lines, units") {
  CHECK(socket_inode_of_link("socket:[12345]") == 12345u);
  CHECK_FALSE(socket_inode_of_link("pipe:[12345]"));
  CHECK_FALSE(socket_inode_of_link("socket:[]"));
  CHECK_FALSE(socket_inode_of_link("socket:[12a]"));
  CHECK_FALSE(socket_inode_of_link("/dev/null"));

  CHECK(cgroup_of_process("12:pids:/system.slice/ssh.service\n0::/system.slice/ssh.service\n") ==
        "system.slice/ssh.service");
  CHECK(cgroup_of_process("0::/\n") == "");
  CHECK(cgroup_of_process("1:name=systemd:/x\n") == "");

  CHECK(unit_of_cgroup("system.slice/ssh.service") == "ssh.service");
  CHECK(unit_of_cgroup("system.slice/ssh.service/sub") == "ssh.service");
  CHECK(unit_of_cgroup("system.slice/sshd.socket") == "sshd.socket");
  CHECK(unit_of_cgroup("user.slice/user-1000.slice/user@1000.service/app.slice/app-x.scope") ==
        "app-x.scope");
  CHECK(unit_of_cgroup("user.slice/user-1000.slice/session-3.scope") == "session-3.scope");
  CHECK(unit_of_cgroup("portier-test/allowed") == "");
  CHECK(unit_of_cgroup("") == "");
}

TEST_CASE("owners: one pass over a fake /proc finds each socket's process") {
  TempDir proc;
  proc.write("100/comm", "sshd\n");
  proc.write("100/cgroup", "0::/system.slice/ssh.service\n");
  proc.link("100/fd/3", "socket:[500]");
  proc.link("100/fd/4", "/dev/null");
  // A forked child holds the same socket: the parent (lower pid) is reported.
  proc.write("250/comm", "sshd\n");
  proc.write("250/cgroup", "0::/system.slice/ssh.service\n");
  proc.link("250/fd/3", "socket:[500]");
  proc.write("120/comm", "nc\n");
  proc.write("120/cgroup", "0::/user.slice/user-1000.slice/session-2.scope\n");
  proc.link("120/fd/5", "socket:[600]");
  proc.write("self/comm", "ignored\n");  // not a pid
  proc.write("130/comm", "no-fds\n");    // a process whose fd folder cannot be read

  auto holders = socket_holders(proc.path.string());
  CHECK(holders.size() == 2);
  CHECK(holders[500] == 100);
  CHECK(holders[600] == 120);

  std::vector<ListeningSocket> sockets(4);
  sockets[0].inode = 500;
  sockets[1].inode = 600;
  sockets[1].uid = 0xfffffff0;  // no such user
  sockets[2].inode = 700;       // nobody holds it (or we may not look)
  sockets[3].inode = 600;
  sockets[3].cgroup = "portier/from-sock-diag";  // the socket's own cgroup wins
  fill_socket_owners(sockets, proc.path.string());

  CHECK(sockets[0].pid == 100);
  CHECK(sockets[0].process == "sshd");
  CHECK(sockets[0].cgroup == "system.slice/ssh.service");
  CHECK(sockets[0].unit == "ssh.service");
  CHECK(sockets[0].user == "root");

  CHECK(sockets[1].pid == 120);
  CHECK(sockets[1].process == "nc");
  CHECK(sockets[1].unit == "session-2.scope");
  CHECK(sockets[1].user == "");

  CHECK(sockets[2].pid == 0);
  CHECK(sockets[2].process == "");
  CHECK(sockets[2].unit == "");

  CHECK(sockets[3].pid == 120);
  CHECK(sockets[3].cgroup == "portier/from-sock-diag");
  CHECK(sockets[3].unit == "");
}

TEST_CASE("owners: cgroup ids back to paths by walking the hierarchy") {
  TempDir root;
  fs::create_directories(root.path / "system.slice/ssh.service");
  fs::create_directories(root.path / "user.slice");
  auto inode = [](const fs::path& path) {
    struct stat status {};
    REQUIRE(::stat(path.c_str(), &status) == 0);
    return static_cast<std::uint64_t>(status.st_ino);
  };
  std::uint64_t ssh = inode(root.path / "system.slice/ssh.service");
  std::uint64_t top = inode(root.path);
  auto paths = cgroup_paths(root.path.string(), {ssh, top, 1});
  CHECK(paths.size() == 2);
  CHECK(paths[ssh] == "system.slice/ssh.service");
  CHECK(paths[top] == "");
  CHECK(cgroup_paths("", {ssh}).empty());
}

// Found by fuzz_sock_diag: an empty datagram memcpy'd from a null pointer (UBSan), and a
// message length of 2^31 or more walked out of the buffer (netlink_message.h).
TEST_CASE("sock_diag: an empty datagram and a message claiming 4 GiB") {
  const SockDiagReply empty = parse_sock_diag_reply({}, ir::L4Proto::tcp);
  CHECK(empty.sockets.empty());
  CHECK_FALSE(empty.done);
  const std::vector<std::uint8_t> huge = fixtures::message_claiming_4_gib();
  CHECK_THROWS_WITH_AS(parse_sock_diag_reply(huge, ir::L4Proto::udp),
                       "sock_diag: truncated message in reply", std::runtime_error);
}

// Found by fuzz_sock_diag (UBSan): the errno of an NLMSG_ERROR was negated, and INT_MIN has
// no negation.
TEST_CASE("sock_diag: an error of INT_MIN is EPROTO") {
  try {
    parse_sock_diag_reply(fixtures::error_message(INT_MIN), ir::L4Proto::tcp);
    FAIL("no exception");
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == EPROTO);
  }
}
