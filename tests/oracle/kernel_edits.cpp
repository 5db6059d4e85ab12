// NetlinkKernel's small changes against the real kernel. Run inside a fresh network
// namespace (the test script uses `unshare -n`): everything here changes `table inet
// portier` of the namespace it runs in, and runs nft there to look at the result.
#include "kernel_edits.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "encode_batch.h"
#include "netlink_kernel.h"
#include "render_nft.h"
#include "ruleset.h"

namespace portier::oracle {
namespace {

using namespace portier::ir;

// --- building the IR -------------------------------------------------------------------

Rule rule(std::vector<Match> matches, VerdictKind kind, std::string comment, bool counter = false) {
  Rule r;
  r.matches = std::move(matches);
  r.verdict.kind = kind;
  r.comment = std::move(comment);
  r.counter = counter;
  return r;
}

Rule jump(std::string chain, std::string comment) {
  Rule r = rule({}, VerdictKind::jump, std::move(comment));
  r.verdict.chain = std::move(chain);
  return r;
}

L4ProtoIn tcp() { return L4ProtoIn{{L4Proto::tcp}}; }
L4ProtoIn udp() { return L4ProtoIn{{L4Proto::udp}}; }
DestPortIn ports(std::vector<PortRange> ranges) { return DestPortIn{std::move(ranges)}; }

Address ipv4(std::uint32_t value) {
  Address a;
  for (int b = 0; b < 4; ++b) a.bytes[b] = static_cast<std::uint8_t>(value >> (24 - 8 * b));
  return a;
}

Address address(const std::string& text) {
  Address a;
  if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) != 1) {
    throw std::invalid_argument("bad address " + text);
  }
  return a;
}

AddressRange range(const std::string& first, const std::string& last) {
  return {address(first), address(last)};
}
AddressRange single(const std::string& text) { return range(text, text); }
AddressRange single(std::uint32_t value) { return {ipv4(value), ipv4(value)}; }

Chain base_chain(std::string name, Hook hook, std::vector<Rule> rules) {
  return Chain{std::move(name), BaseChain{hook, ChainType::filter, 0, true}, std::move(rules)};
}

// The table the scenario starts from. Rules are found again by their comments.
Ruleset base() {
  Ruleset r;
  r.sets.push_back(NamedSet{"block4",
                            SetKey::ipv4_addr,
                            true,
                            false,
                            false,
                            std::nullopt,
                            std::nullopt,
                            {range("10.0.0.0", "10.255.255.255"), single("192.168.1.7"),
                             range("192.168.2.1", "192.168.2.5")}});
  r.sets.push_back(NamedSet{"hash4",
                            SetKey::ipv4_addr,
                            false,
                            true,
                            false,
                            std::nullopt,
                            std::nullopt,
                            {single("1.1.1.1")}});
  r.chains.push_back(Chain{"svc",
                           std::nullopt,
                           {rule({tcp(), ports({{22, 22}})}, VerdictKind::accept, "ssh"),
                            rule({}, VerdictKind::drop, "svc-drop")}});
  r.chains.push_back(base_chain(
      "input", Hook::input,
      {rule({udp(), ports({{9, 9}})}, VerdictKind::none, "count9", true),
       rule({CtState{ct_invalid}}, VerdictKind::drop, "invalid", true),
       rule({tcp(), ports({{80, 80}})}, VerdictKind::accept, "web"),
       rule({AddressInSet{Family::ipv4, false, "block4"}}, VerdictKind::drop, "blocked", true),
       jump("svc", "to-svc"), rule({udp(), ports({{7, 7}})}, VerdictKind::accept, "echo7", true)}));
  r.chains.push_back(base_chain(
      "output", Hook::output, {rule({udp(), ports({{9, 9}})}, VerdictKind::accept, "out9", true)}));
  return r;
}

Chain& chain_of(Ruleset& r, const std::string& name) {
  for (Chain& c : r.chains) {
    if (c.name == name) return c;
  }
  throw std::invalid_argument("no chain " + name);
}

std::size_t index_of(const Chain& chain, const std::string& comment) {
  for (std::size_t i = 0; i < chain.rules.size(); ++i) {
    if (chain.rules[i].comment == comment) return i;
  }
  throw std::invalid_argument("no rule " + comment + " in chain " + chain.name);
}

// --- helpers -----------------------------------------------------------------------------

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

void shell(const std::string& command) {
  if (std::system(command.c_str()) != 0) throw std::runtime_error("command failed: " + command);
}

void expect(bool condition, const std::string& what) {
  if (!condition) throw std::runtime_error("check failed: " + what);
}

void send_udp(std::uint16_t port, int count) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) throw std::runtime_error("no UDP socket");
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < count; ++i) {
    sendto(fd, "hi\n", 3, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  }
  close(fd);
}

std::uint64_t packets_of(NetlinkKernel& kernel, const std::string& chain,
                         const std::string& comment) {
  for (const RuleCounter& counter : kernel.read_counters("portier", {})) {
    if (counter.chain == chain && counter.comment == comment) return counter.packets;
  }
  throw std::runtime_error("no counter for rule " + comment);
}

std::string kernel_error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const KernelError& error) {
    return error.what();
  }
  return "(no error)";
}

// --- the scenario ------------------------------------------------------------------------

int edits(const std::string& dir) {
  shell("ip link set lo up");
  NetlinkKernel kernel;
  NetlinkChanges changes(kernel);

  // 1. apply: the handles, one line per rule, for comparison with `nft -a list`.
  Ruleset expected = base();
  const RuleHandles handles = kernel.apply(expected);
  expect(!changes.changed_by_others("portier"), "our own apply counts as our own");
  {
    std::string text;
    for (std::size_t c = 0; c < expected.chains.size(); ++c) {
      for (std::size_t r = 0; r < expected.chains[c].rules.size(); ++r) {
        text += expected.chains[c].name + ' ' + expected.chains[c].rules[r].comment + ' ' +
                std::to_string(handles.at(c).at(r)) + '\n';
      }
    }
    write_file(dir + "/apply.handles", text);
  }
  shell("nft -a list table inet portier >'" + dir + "/apply.listing'");
  auto handle_of = [&](const std::string& chain, const std::string& comment) {
    const Ruleset original = base();
    for (std::size_t c = 0; c < original.chains.size(); ++c) {
      if (original.chains[c].name == chain) {
        return handles[c][index_of(original.chains[c], comment)];
      }
    }
    throw std::invalid_argument("no chain " + chain);
  };

  // 2. Counters that must survive the edit.
  send_udp(9, 3);
  const std::uint64_t count9 = packets_of(kernel, "input", "count9");
  const std::uint64_t out9 = packets_of(kernel, "output", "out9");
  expect(count9 == 3 && out9 == 3, "three datagrams counted before the edit");

  // 3. One edit: insertions at the start, after a rule (two after the same one, in order),
  // after the last rule, after a rule the same edit removes, into another chain; anonymous
  // sets and a named set lookup in inserted rules.
  TableEdit edit;
  edit.removes.push_back({"input", handle_of("input", "web")});
  edit.inserts.push_back(
      {"input", 0, rule({tcp(), ports({{8080, 8080}})}, VerdictKind::accept, "first")});
  edit.inserts.push_back(
      {"input", handle_of("input", "blocked"),
       rule({udp(), ports({{53, 53}, {5353, 5353}})}, VerdictKind::accept, "dns")});
  edit.inserts.push_back(
      {"input", handle_of("input", "blocked"),
       rule({AddressInSet{Family::ipv4, true, "hash4"}}, VerdictKind::drop, "hashed", true)});
  edit.inserts.push_back(
      {"input", handle_of("input", "echo7"),
       rule({tcp(), ports({{137, 139}, {445, 445}})}, VerdictKind::accept, "smb")});
  edit.inserts.push_back({"input", handle_of("input", "web"),
                          rule({tcp(), ports({{81, 81}})}, VerdictKind::accept, "web2")});
  edit.inserts.push_back({"svc", 0, rule({udp(), ports({{69, 69}})}, VerdictKind::accept, "tftp")});
  edit.inserts.push_back(
      {"svc", 0, rule({udp(), ports({{70, 70}})}, VerdictKind::accept, "gopher")});
  const std::vector<std::uint64_t> inserted = kernel.edit(expected, edit);
  expect(inserted.size() == edit.inserts.size(), "a handle for every inserted rule");
  expect(!changes.changed_by_others("portier"), "our own edit counts as our own");
  {
    std::string text;
    for (std::size_t i = 0; i < inserted.size(); ++i) {
      text += edit.inserts[i].chain + ' ' + edit.inserts[i].rule.comment + ' ' +
              std::to_string(inserted[i]) + '\n';
    }
    write_file(dir + "/edit.handles", text);
  }
  {
    Chain& input = chain_of(expected, "input");
    auto& rules = input.rules;
    rules[index_of(input, "web")] = edit.inserts[4].rule;  // web2 in its place
    rules.insert(rules.begin() + static_cast<std::ptrdiff_t>(index_of(input, "blocked")) + 1,
                 {edit.inserts[1].rule, edit.inserts[2].rule});
    rules.insert(rules.begin() + static_cast<std::ptrdiff_t>(index_of(input, "echo7")) + 1,
                 edit.inserts[3].rule);
    rules.insert(rules.begin(), edit.inserts[0].rule);
    Chain& svc = chain_of(expected, "svc");
    svc.rules.insert(svc.rules.begin(), {edit.inserts[5].rule, edit.inserts[6].rule});
  }
  write_file(dir + "/edit.expected.nft", render_nft_replace(expected));
  shell("nft list table inet portier >'" + dir + "/edit.listing'");
  shell("nft -a list table inet portier >'" + dir + "/edit.listing-a'");
  expect(packets_of(kernel, "input", "count9") == count9, "count9 kept its counter");
  expect(packets_of(kernel, "output", "out9") == out9, "out9 kept its counter");
  send_udp(9, 2);
  expect(packets_of(kernel, "input", "count9") == count9 + 2, "count9 goes on counting");

  // 4. All or nothing: a removal of a rule that does not exist refuses the whole edit.
  TableEdit bad;
  bad.inserts.push_back({"input", 0, rule({tcp(), ports({{1, 1}})}, VerdictKind::accept, "never")});
  bad.removes.push_back({"input", 999999});
  write_file(dir + "/edit.error", kernel_error_of([&] { kernel.edit(expected, bad); }) + '\n');
  TableEdit bad_position;
  bad_position.inserts.push_back(
      {"input", 999998, rule({tcp(), ports({{2, 2}})}, VerdictKind::accept, "nowhere")});
  write_file(dir + "/edit.error2",
             kernel_error_of([&] { kernel.edit(expected, bad_position); }) + '\n');
  shell("nft list table inet portier >'" + dir + "/edit.listing-after-error'");

  // 5. Set elements: an interval set (single addresses, a prefix, removal), a big edit split
  // over several messages, a hash set with per-element timeouts, and a refused edit.
  SetEdit interval{"block4",
                   SetKey::ipv4_addr,
                   true,
                   {single("172.16.0.1"), range("172.20.0.0", "172.20.255.255")},
                   {single("192.168.1.7")},
                   std::nullopt};
  kernel.edit_set("portier", interval);
  NamedSet& block4 = expected.sets[0];
  block4.elements = {range("10.0.0.0", "10.255.255.255"), single("172.16.0.1"),
                     range("172.20.0.0", "172.20.255.255"), range("192.168.2.1", "192.168.2.5")};
  write_file(dir + "/set1.expected.nft", render_nft_replace(expected));
  shell("nft list set inet portier block4 >'" + dir + "/set1.listing'");

  SetEdit many{"block4", SetKey::ipv4_addr, true, {}, {}, std::nullopt};
  const std::uint32_t first = (100u << 24) | (64u << 16);  // 100.64.0.0
  for (std::uint32_t i = 0; i < 5000; ++i) many.add.push_back(single(first + 2 * i));
  kernel.edit_set("portier", many);
  Ruleset with_many = expected;
  with_many.sets[0].elements.insert(with_many.sets[0].elements.begin() + 1, many.add.begin(),
                                    many.add.end());
  std::sort(with_many.sets[0].elements.begin(), with_many.sets[0].elements.end(),
            [](const AddressRange& a, const AddressRange& b) { return a.first < b.first; });
  write_file(dir + "/set2.expected.nft", render_nft_replace(with_many));
  shell("nft list set inet portier block4 >'" + dir + "/set2.listing'");
  std::swap(many.add, many.remove);
  kernel.edit_set("portier", many);
  shell("nft list set inet portier block4 >'" + dir + "/set3.listing'");  // as set1 again

  SetEdit hashed{"hash4",
                 SetKey::ipv4_addr,
                 false,
                 {single("2.2.2.2"), single("3.3.3.3")},
                 {single("1.1.1.1")},
                 3600};
  kernel.edit_set("portier", hashed);
  shell("nft list set inet portier hash4 >'" + dir + "/hash.listing'");

  SetEdit refused{
      "block4",    SetKey::ipv4_addr, true, {single("172.31.0.1")}, {single("172.30.0.1")},
      std::nullopt};
  write_file(dir + "/set.error",
             kernel_error_of([&] { kernel.edit_set("portier", refused); }) + '\n');
  shell("nft list set inet portier block4 >'" + dir + "/set4.listing'");  // as set1 again
  expect(!changes.changed_by_others("portier"), "our own set edits count as our own");

  // 6. Changes by others: another table does not count, a rule added to ours does, once.
  shell(
      "nft add table inet other && nft add chain inet other c && nft add rule inet other c "
      "counter");
  expect(!changes.changed_by_others("portier"), "a change to another table is not ours to see");
  shell("nft add rule inet portier input counter");
  expect(changes.changed_by_others("portier"), "nft add rule by another process is seen");
  expect(!changes.changed_by_others("portier"), "a change is reported once");
  kernel.apply(base());
  expect(!changes.changed_by_others("portier"), "our own apply after theirs counts as our own");
  shell("nft flush chain inet portier svc");
  expect(changes.changed_by_others("portier"), "nft flush chain by another process is seen");

  // 7. An owned table: our edits work, others are refused and change nothing.
  Ruleset owned = base();
  owned.owner = true;
  kernel.apply(owned);
  TableEdit own_edit;
  own_edit.inserts.push_back(
      {"input", 0, rule({tcp(), ports({{1, 1}})}, VerdictKind::accept, "owned")});
  kernel.edit(owned, own_edit);
  kernel.edit_set("portier", interval);
  shell("! nft add rule inet portier input counter 2>/dev/null");
  expect(!changes.changed_by_others("portier"), "a refused change by others is no change");
  shell("nft list table inet portier | grep -q '\"owned\"'");
  std::cout << "edits: all in-process checks passed\n";
  return 0;
}

// --- what a plain subscriber sees ----------------------------------------------------------

int watch() {
  struct Closer {
    void operator()(mnl_socket* s) const { mnl_socket_close(s); }
  };
  std::unique_ptr<mnl_socket, Closer> events(mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK));
  if (!events || mnl_socket_bind(events.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    throw std::runtime_error("no event socket");
  }
  int group = NFNLGRP_NFTABLES;
  mnl_socket_setsockopt(events.get(), NETLINK_ADD_MEMBERSHIP, &group, sizeof group);
  auto drain = [&](const std::string& title) {
    std::cout << title << '\n';
    std::vector<char> buffer(1 << 16);
    for (;;) {
      const ssize_t n = recv(mnl_socket_get_fd(events.get()), buffer.data(), buffer.size(), 0);
      if (n <= 0) break;
      int remaining = static_cast<int>(n);
      for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.data());
           mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
        std::cout << "  type " << (nlh->nlmsg_type & 0xff) << " nlmsg_pid " << nlh->nlmsg_pid
                  << " seq " << nlh->nlmsg_seq << " flags 0x" << std::hex << nlh->nlmsg_flags
                  << std::dec;
        if ((nlh->nlmsg_type & 0xff) == NFT_MSG_NEWGEN) {
          mnl_attr_parse(
              nlh, sizeof(nfgenmsg),
              [](const nlattr* attr, void*) {
                switch (mnl_attr_get_type(attr)) {
                  case NFTA_GEN_ID:
                    std::cout << " gen " << ntohl(mnl_attr_get_u32(attr));
                    break;
                  case NFTA_GEN_PROC_PID:
                    std::cout << " proc_pid " << ntohl(mnl_attr_get_u32(attr));
                    break;
                  case NFTA_GEN_PROC_NAME:
                    std::cout << " proc_name " << mnl_attr_get_str(attr);
                    break;
                }
                return MNL_CB_OK;
              },
              nullptr);
        }
        std::cout << '\n';
      }
    }
  };
  // A NetlinkKernel that never opens its own event socket: its batches stay visible here.
  NetlinkKernel kernel;
  Ruleset small;
  small.chains.push_back(base_chain("input", Hook::input, {rule({}, VerdictKind::accept, "a")}));
  kernel.apply(small);
  drain("our apply (this process is pid " + std::to_string(getpid()) +
        "; types: 0 NEWTABLE, 2 DELTABLE, 3 NEWCHAIN, 6 NEWRULE, 15 NEWGEN):");
  shell("nft add rule inet portier input counter");
  drain("nft add rule inet portier input counter:");
  return 0;
}

// --- timing --------------------------------------------------------------------------------

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

template <typename F>
double time_ms(F&& action) {
  const auto start = std::chrono::steady_clock::now();
  action();
  return ms_since(start);
}

Ruleset many_rules(std::size_t count) {
  std::vector<Rule> rules;
  for (std::size_t i = 0; i < count; ++i) {
    const auto port = static_cast<std::uint16_t>(1 + i % 60000);
    rules.push_back(rule({tcp(), ports({{port, port}})}, VerdictKind::accept,
                         "r" + std::to_string(i), i % 2 == 0));
  }
  Ruleset r;
  r.chains.push_back(base_chain("input", Hook::input, std::move(rules)));
  return r;
}

// The replace batch without NLM_F_ECHO on its rules, sent on a socket of its own: what
// apply() cost before it returned handles.
void apply_without_echo(const Ruleset& ruleset) {
  struct Closer {
    void operator()(mnl_socket* s) const { mnl_socket_close(s); }
  };
  static std::unique_ptr<mnl_socket, Closer> socket;
  if (!socket) {
    socket.reset(mnl_socket_open(NETLINK_NETFILTER));
    if (!socket || mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
      throw std::runtime_error("no socket");
    }
    int size = 64 << 20;
    setsockopt(mnl_socket_get_fd(socket.get()), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    setsockopt(mnl_socket_get_fd(socket.get()), SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
  }
  EncodedBatch batch = encode_replace_batch(ruleset, static_cast<std::uint32_t>(time(nullptr)));
  std::size_t acks = 0;
  int remaining = static_cast<int>(batch.bytes.size());
  for (auto* nlh = reinterpret_cast<nlmsghdr*>(batch.bytes.data()); mnl_nlmsg_ok(nlh, remaining);
       nlh = const_cast<nlmsghdr*>(mnl_nlmsg_next(nlh, &remaining))) {
    nlh->nlmsg_flags &= static_cast<std::uint16_t>(~NLM_F_ECHO);
    if (nlh->nlmsg_flags & NLM_F_ACK) ++acks;
  }
  if (mnl_socket_sendto(socket.get(), batch.bytes.data(), batch.bytes.size()) < 0) {
    throw std::runtime_error("send failed");
  }
  std::vector<char> buffer(1 << 16);
  while (acks > 0) {
    const ssize_t n = recv(mnl_socket_get_fd(socket.get()), buffer.data(), buffer.size(), 0);
    if (n <= 0) throw std::runtime_error("recv failed");
    int left = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(nlh, left);
         nlh = mnl_nlmsg_next(nlh, &left)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (err->error != 0) throw std::runtime_error("kernel refused the batch");
      --acks;
    }
  }
}

// CPU time of this process (user + system: nfnetlink runs the batch inside our sendmsg),
// steadier than wall time on a busy machine.
double cpu_ms() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto ms = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3;
  };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

void time_handles(NetlinkKernel& kernel, std::size_t rules, int runs) {
  const Ruleset ruleset = many_rules(rules);
  std::vector<double> with_echo, with_echo_cpu;
  std::vector<double> without_echo, without_echo_cpu;
  for (int i = 0; i < runs; ++i) {
    double cpu = cpu_ms();
    with_echo.push_back(time_ms([&] { kernel.apply(ruleset); }));
    with_echo_cpu.push_back(cpu_ms() - cpu);
    cpu = cpu_ms();
    without_echo.push_back(time_ms([&] { apply_without_echo(ruleset); }));
    without_echo_cpu.push_back(cpu_ms() - cpu);
  }
  std::printf(
      "apply %zu rules: with handles (echo) %.1f ms (CPU %.1f ms), without %.1f ms (CPU %.1f "
      "ms) (median of %d)\n",
      rules, median(with_echo), median(with_echo_cpu), median(without_echo),
      median(without_echo_cpu), runs);
}

void time_rule_edits(NetlinkKernel& kernel, std::size_t rules, int runs) {
  const Ruleset ruleset = many_rules(rules);
  const RuleHandles handles = kernel.apply(ruleset);
  const std::uint64_t middle = handles[0][rules / 2];
  std::vector<double> inserts;
  std::vector<double> removes;
  for (int i = 0; i < runs; ++i) {
    TableEdit insert;
    insert.inserts.push_back(
        {"input", middle,
         rule({tcp(), ports({{9, 9}}), CtState{ct_new}}, VerdictKind::accept, "new", true)});
    std::vector<std::uint64_t> added;
    inserts.push_back(time_ms([&] { added = kernel.edit(ruleset, insert); }));
    TableEdit remove;
    remove.removes.push_back({"input", added.at(0)});
    removes.push_back(time_ms([&] { kernel.edit(ruleset, remove); }));
  }
  std::printf(
      "edit in a %zu-rule chain: insert one rule %.3f ms, remove one %.3f ms (median of %d)\n",
      rules, median(inserts), median(removes), runs);
}

void time_set_edits(NetlinkKernel& kernel, std::size_t size, bool interval, int runs) {
  // Addresses 4 apart from 1.0.0.0: the added ones fall between them, all over the tree.
  Ruleset ruleset;
  NamedSet set{"big", SetKey::ipv4_addr, interval, false, false, std::nullopt, std::nullopt, {}};
  set.elements.reserve(size);
  const std::uint32_t first = 1u << 24;
  for (std::size_t i = 0; i < size; ++i) {
    set.elements.push_back(single(first + 4 * static_cast<std::uint32_t>(i)));
  }
  ruleset.sets.push_back(std::move(set));
  ruleset.chains.push_back(
      base_chain("input", Hook::input,
                 {rule({AddressInSet{Family::ipv4, false, "big"}}, VerdictKind::drop, "")}));
  const double load = time_ms([&] { kernel.apply(ruleset); });
  std::vector<double> adds;
  std::vector<double> removes;
  for (int i = 0; i < runs; ++i) {
    const auto slot = static_cast<std::uint32_t>((size / static_cast<std::size_t>(runs + 1)) *
                                                 static_cast<std::size_t>(i + 1));
    const AddressRange added = single(first + 4 * slot + 2);
    SetEdit add{"big", SetKey::ipv4_addr, interval, {added}, {}, std::nullopt};
    SetEdit remove{"big", SetKey::ipv4_addr, interval, {}, {added}, std::nullopt};
    adds.push_back(time_ms([&] { kernel.edit_set("portier", add); }));
    removes.push_back(time_ms([&] { kernel.edit_set("portier", remove); }));
  }
  std::printf("%s set of %zu: apply %.0f ms; add one %.3f ms, remove one %.3f ms (median of %d)\n",
              interval ? "interval" : "hash", size, load, median(adds), median(removes), runs);
}

}  // namespace

int run_edits(const std::string& dir) { return edits(dir); }
int run_watch() { return watch(); }

int run_time_edits(const std::vector<std::string>& args) {
  std::vector<std::size_t> sizes = {1000, 100000, 1000000};
  if (args.size() == 1 && args[0] == "rules") {  // only edits of a 10k-rule chain, for perf
    NetlinkKernel kernel;
    time_rule_edits(kernel, 10000, 200);
    return 0;
  }
  if (!args.empty()) {
    sizes.clear();
    for (const std::string& arg : args) sizes.push_back(std::stoul(arg));
  }
  NetlinkKernel kernel;
  NetlinkChanges changes(kernel);  // as the daemon runs it: subscribed to events
  time_handles(kernel, 10000, 9);
  // The echo-less applies went through a socket of their own: someone else's changes.
  std::printf("changed_by_others after the echo-less applies: %s (expected: yes)\n",
              changes.changed_by_others("portier") ? "yes" : "no");
  time_rule_edits(kernel, 10, 21);
  time_rule_edits(kernel, 10000, 21);
  for (bool interval : {true, false}) {
    for (std::size_t size : sizes) time_set_edits(kernel, size, interval, 9);
  }
  std::printf("changed_by_others after our own edits: %s (expected: no)\n",
              changes.changed_by_others("portier") ? "yes" : "no");
  return 0;
}

}  // namespace portier::oracle
