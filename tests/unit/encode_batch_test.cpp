// Decodes the batch with libmnl and libnftnl's parsers, as the kernel would read it.
// (tests/integration/test_oracle_encoder.sh compares it with nft's own batch byte for byte.)
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "encode_batch.h"

namespace {

using namespace portier::ir;

struct NftnlFree {
  void operator()(nftnl_rule* p) const { nftnl_rule_free(p); }
  void operator()(nftnl_set* p) const { nftnl_set_free(p); }
  void operator()(nftnl_table* p) const { nftnl_table_free(p); }
};

struct Message {
  std::uint16_t type;
  std::uint16_t flags;
  std::uint32_t seq;
  const nlmsghdr* nlh;
};

std::vector<Message> split(const portier::EncodedBatch& batch) {
  std::vector<Message> messages;
  int remaining = static_cast<int>(batch.bytes.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.bytes.data());
       mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
    messages.push_back({nlh->nlmsg_type, nlh->nlmsg_flags, nlh->nlmsg_seq, nlh});
  }
  CHECK(remaining == 0);
  return messages;
}

constexpr std::uint16_t nft(std::uint16_t msg) {
  return static_cast<std::uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | msg);
}

struct DecodedElement {
  std::uint16_t port;  // host order; protocols are widened
  bool interval_end;
  bool open_interval;
  friend bool operator==(const DecodedElement&, const DecodedElement&) = default;
};

std::vector<const nlattr*> nested(const nlattr* attr) {
  std::vector<const nlattr*> children;
  mnl_attr_parse_nested(
      attr,
      [](const nlattr* child, void* out) {
        static_cast<std::vector<const nlattr*>*>(out)->push_back(child);
        return MNL_CB_OK;
      },
      &children);
  return children;
}

// Decoded by hand: libnftnl's parser only accepts element nests numbered 1, as the kernel
// dumps them, while nft (and we) number them 1, 2, 3, ... when sending.
std::vector<DecodedElement> elements_of(const nlmsghdr* nlh,
                                        std::vector<std::uint16_t>* numbers = nullptr) {
  struct Walk {
    std::vector<DecodedElement> elements;
    std::vector<std::uint16_t>* numbers;
  } walk{{}, numbers};
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS) return MNL_CB_OK;
        auto* w = static_cast<Walk*>(data);
        for (const nlattr* element : nested(attr)) {
          if (w->numbers) w->numbers->push_back(mnl_attr_get_type(element));
          DecodedElement decoded{};
          for (const nlattr* field : nested(element)) {
            switch (mnl_attr_get_type(field)) {
              case NFTA_SET_ELEM_KEY: {
                for (const nlattr* value : nested(field)) {
                  const auto* key = static_cast<const std::uint8_t*>(mnl_attr_get_payload(value));
                  decoded.port = mnl_attr_get_payload_len(value) == 2
                                     ? static_cast<std::uint16_t>(key[0] << 8 | key[1])
                                     : key[0];
                }
                break;
              }
              case NFTA_SET_ELEM_FLAGS:
                decoded.interval_end =
                    (ntohl(mnl_attr_get_u32(field)) & NFT_SET_ELEM_INTERVAL_END) != 0;
                break;
              case NFTA_SET_ELEM_USERDATA: {
                // {type NFTNL_UDATA_SET_ELEM_FLAGS, len 4, NFTNL_SET_ELEM_F_INTERVAL_OPEN}
                const std::vector<std::uint8_t> open{1, 4, 1, 0, 0, 0};
                const auto* udata = static_cast<const std::uint8_t*>(mnl_attr_get_payload(field));
                decoded.open_interval = std::vector<std::uint8_t>(
                                            udata, udata + mnl_attr_get_payload_len(field)) == open;
                break;
              }
            }
          }
          w->elements.push_back(decoded);
        }
        return MNL_CB_OK;
      },
      &walk);
  return walk.elements;
}

std::vector<std::string> expression_names(const nftnl_rule* rule) {
  std::vector<std::string> names;
  nftnl_expr_foreach(
      const_cast<nftnl_rule*>(rule),
      [](nftnl_expr* e, void* out) {
        static_cast<std::vector<std::string>*>(out)->push_back(
            nftnl_expr_get_str(e, NFTNL_EXPR_NAME));
        return 0;
      },
      &names);
  return names;
}

std::unique_ptr<nftnl_rule, NftnlFree> parse_rule(const nlmsghdr* nlh) {
  std::unique_ptr<nftnl_rule, NftnlFree> rule(nftnl_rule_alloc());
  REQUIRE(nftnl_rule_nlmsg_parse(nlh, rule.get()) >= 0);
  return rule;
}

std::unique_ptr<nftnl_set, NftnlFree> parse_set(const nlmsghdr* nlh) {
  std::unique_ptr<nftnl_set, NftnlFree> set(nftnl_set_alloc());
  REQUIRE(nftnl_set_nlmsg_parse(nlh, set.get()) >= 0);
  return set;
}

std::vector<std::uint8_t> bytes_of(const void* data, std::uint32_t len) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  return {p, p + len};
}

Rule make_rule(std::vector<Match> matches, VerdictKind kind, std::string comment = {},
               bool counter = false) {
  Rule rule;
  rule.matches = std::move(matches);
  rule.verdict.kind = kind;
  rule.comment = std::move(comment);
  rule.counter = counter;
  return rule;
}

Ruleset one_rule_ruleset(Rule rule) {
  Ruleset ruleset;
  ruleset.chains.push_back(Chain{"input", BaseChain{}, {std::move(rule)}});
  return ruleset;
}

}  // namespace

TEST_CASE("encode_replace_batch: table replacement, chains and rules in nft's order") {
  Ruleset ruleset;
  ruleset.chains.push_back(Chain{"svc", std::nullopt, {}});
  ruleset.chains.push_back(Chain{"input",
                                 BaseChain{Hook::input, ChainType::filter, -5, false},
                                 {make_rule({LoopbackInterface{false}}, VerdictKind::accept),
                                  make_rule({}, VerdictKind::drop, "last")}});
  const auto batch = portier::encode_replace_batch(ruleset, 1000);
  const auto messages = split(batch);

  const std::vector<std::uint16_t> expected_types = {
      NFNL_MSG_BATCH_BEGIN,  nft(NFT_MSG_NEWTABLE), nft(NFT_MSG_DELTABLE),
      nft(NFT_MSG_NEWTABLE), nft(NFT_MSG_NEWCHAIN), nft(NFT_MSG_NEWCHAIN),
      nft(NFT_MSG_NEWRULE),  nft(NFT_MSG_NEWRULE),  NFNL_MSG_BATCH_END};
  REQUIRE(messages.size() == expected_types.size());
  REQUIRE(batch.messages.size() == messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    CAPTURE(i);
    CHECK(messages[i].type == expected_types[i]);
    CHECK(messages[i].seq == 1000 + i);
    CHECK(batch.messages[i].seq == messages[i].seq);
    CHECK(batch.messages[i].type == messages[i].type);
    const bool is_request = i > 0 && i + 1 < messages.size();
    CHECK(batch.messages[i].wants_ack == is_request);
    CHECK(((messages[i].flags & NLM_F_ACK) != 0) == is_request);
    CHECK((messages[i].flags & NLM_F_REQUEST) != 0);
  }
  CHECK(batch.next_seq == 1000 + messages.size());

  // The batch begin names the nf_tables subsystem in nfgenmsg.res_id.
  const auto* begin = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(messages[0].nlh));
  CHECK(ntohs(begin->res_id) == NFNL_SUBSYS_NFTABLES);
  const auto* table_header = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(messages[1].nlh));
  CHECK(table_header->nfgen_family == NFPROTO_INET);

  CHECK((messages[1].flags & NLM_F_CREATE) != 0);
  CHECK((messages[2].flags & NLM_F_CREATE) == 0);
  CHECK((messages[3].flags & NLM_F_CREATE) != 0);
  CHECK((messages[6].flags & (NLM_F_CREATE | NLM_F_APPEND)) == (NLM_F_CREATE | NLM_F_APPEND));
  for (int i = 1; i <= 3; ++i) {
    std::unique_ptr<nftnl_table, NftnlFree> table(nftnl_table_alloc());
    REQUIRE(nftnl_table_nlmsg_parse(messages[i].nlh, table.get()) >= 0);
    CHECK(std::string(nftnl_table_get_str(table.get(), NFTNL_TABLE_NAME)) == "portier");
  }

  CHECK(batch.messages[1].what == "table inet portier");
  CHECK(batch.messages[2].what == "deletion of table inet portier");
  CHECK(batch.messages[4].what == "chain svc");
  CHECK(batch.messages[5].what == "chain input");
  CHECK(batch.messages[6].what == "rule 1 in chain input");
  CHECK(batch.messages[7].what == "rule \"last\" in chain input");
  REQUIRE(batch.find(1007) != nullptr);
  CHECK(batch.find(1007)->what == "rule \"last\" in chain input");
  CHECK(batch.find(999) == nullptr);
  CHECK(batch.find(1009) == nullptr);

  // The base chain: hook, priority, policy and type (big-endian on the wire).
  struct ChainAttrs {
    std::string type;
    std::uint32_t policy = 99, hook = 99;
    std::int32_t priority = 99;
  } chain;
  mnl_attr_parse(
      messages[5].nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        auto* c = static_cast<ChainAttrs*>(data);
        switch (mnl_attr_get_type(attr)) {
          case NFTA_CHAIN_TYPE:
            c->type = mnl_attr_get_str(attr);
            break;
          case NFTA_CHAIN_POLICY:
            c->policy = ntohl(mnl_attr_get_u32(attr));
            break;
          case NFTA_CHAIN_HOOK:
            mnl_attr_parse_nested(
                attr,
                [](const nlattr* nested, void* d) {
                  auto* cc = static_cast<ChainAttrs*>(d);
                  if (mnl_attr_get_type(nested) == NFTA_HOOK_HOOKNUM)
                    cc->hook = ntohl(mnl_attr_get_u32(nested));
                  if (mnl_attr_get_type(nested) == NFTA_HOOK_PRIORITY)
                    cc->priority = static_cast<std::int32_t>(ntohl(mnl_attr_get_u32(nested)));
                  return MNL_CB_OK;
                },
                c);
            break;
        }
        return MNL_CB_OK;
      },
      &chain);
  CHECK(chain.type == "filter");
  CHECK(chain.policy == NF_DROP);
  CHECK(chain.hook == NF_INET_LOCAL_IN);
  CHECK(chain.priority == -5);

  const auto rule = parse_rule(messages[6].nlh);
  CHECK(std::string(nftnl_rule_get_str(rule.get(), NFTNL_RULE_CHAIN)) == "input");
  CHECK(expression_names(rule.get()) == std::vector<std::string>{"meta", "cmp", "immediate"});
  CHECK_FALSE(nftnl_rule_is_set(rule.get(), NFTNL_RULE_USERDATA));

  // The comment is an NFTNL_UDATA_RULE_COMMENT TLV whose value keeps the NUL.
  const auto commented = parse_rule(messages[7].nlh);
  std::uint32_t len = 0;
  const void* udata = nftnl_rule_get_data(commented.get(), NFTNL_RULE_USERDATA, &len);
  CHECK(bytes_of(udata, len) == std::vector<std::uint8_t>{0, 5, 'l', 'a', 's', 't', 0});
}

TEST_CASE("encode_refill_batch: the table and chains stay, rules flushed, sets made anew") {
  Ruleset loaded;
  loaded.sets.push_back(
      NamedSet{"old", SetKey::ipv4_addr, false, false, false, std::nullopt, std::nullopt, {}});
  loaded.maps.push_back(RuleMap{"input/m1", {KeyField::dport}, {}});
  loaded.chains.push_back(Chain{"svc", std::nullopt, {make_rule({}, VerdictKind::accept)}});
  loaded.chains.push_back(Chain{"input",
                                BaseChain{Hook::input, ChainType::filter, 0, false},
                                {make_rule({}, VerdictKind::drop, "old rule")}});
  Ruleset next = loaded;
  next.sets = {
      NamedSet{"new", SetKey::ipv4_addr, false, false, false, std::nullopt, std::nullopt, {}}};
  next.maps.clear();
  next.chains[1].rules = {make_rule({LoopbackInterface{false}}, VerdictKind::accept),
                          make_rule({}, VerdictKind::drop, "last")};
  REQUIRE(portier::replaces_in_place(loaded, next));
  const auto batch = portier::encode_refill_batch(loaded, next, 10);
  const auto messages = split(batch);
  const std::vector<std::uint16_t> expected_types = {
      NFNL_MSG_BATCH_BEGIN, nft(NFT_MSG_NEWTABLE), nft(NFT_MSG_DELRULE), nft(NFT_MSG_DELSET),
      nft(NFT_MSG_DELSET),  nft(NFT_MSG_NEWSET),   nft(NFT_MSG_NEWRULE), nft(NFT_MSG_NEWRULE),
      nft(NFT_MSG_NEWRULE), NFNL_MSG_BATCH_END};
  REQUIRE(messages.size() == expected_types.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    CAPTURE(i);
    CHECK(messages[i].type == expected_types[i]);
    CHECK(messages[i].seq == 10 + i);
  }
  // The rule flush names the table alone: every chain's rules go, no chain does.
  std::string table;
  bool chain_named = false;
  std::pair<std::string*, bool*> seen{&table, &chain_named};
  mnl_attr_parse(
      messages[2].nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        auto* found = static_cast<std::pair<std::string*, bool*>*>(data);
        if (mnl_attr_get_type(attr) == NFTA_RULE_TABLE) *found->first = mnl_attr_get_str(attr);
        if (mnl_attr_get_type(attr) == NFTA_RULE_CHAIN) *found->second = true;
        return MNL_CB_OK;
      },
      &seen);
  CHECK(table == "portier");
  CHECK_FALSE(chain_named);
  CHECK(batch.messages[2].what == "the rules of table inet portier");
  // The loaded sets and maps go by name; the new ones come as a first load sends them.
  CHECK(std::string(nftnl_set_get_str(parse_set(messages[3].nlh).get(), NFTNL_SET_NAME)) == "old");
  CHECK(std::string(nftnl_set_get_str(parse_set(messages[4].nlh).get(), NFTNL_SET_NAME)) ==
        "input/m1");
  CHECK(batch.messages[4].what == "deletion of map input/m1");
  CHECK(std::string(nftnl_set_get_str(parse_set(messages[5].nlh).get(), NFTNL_SET_NAME)) == "new");
  CHECK(batch.rule_seqs == std::vector<std::uint32_t>{16, 17, 18});
  CHECK(batch.messages[8].what == "rule \"last\" in chain input");
  // The rules are the bytes a whole replacement sends for them.
  const auto whole_batch = portier::encode_replace_batch(next, 10);  // split() points into it
  const auto whole = split(whole_batch);
  // DELTABLE, NEWTABLE and two NEWCHAINs in place of DELRULE and two DELSETs.
  REQUIRE(whole.size() == messages.size() + 1);
  for (std::size_t i : {6u, 7u, 8u}) {
    const nlmsghdr* ours = messages[i].nlh;
    const nlmsghdr* theirs = whole[i + 1].nlh;
    REQUIRE(ours->nlmsg_len == theirs->nlmsg_len);
    CHECK(std::memcmp(mnl_nlmsg_get_payload(ours), mnl_nlmsg_get_payload(theirs),
                      ours->nlmsg_len - sizeof(nlmsghdr)) == 0);
  }
}

TEST_CASE("encode_refill_batch: only over the same chains, table and flags") {
  Ruleset loaded;
  loaded.chains.push_back(Chain{"svc", std::nullopt, {}});
  loaded.chains.push_back(Chain{"input", BaseChain{Hook::input, ChainType::filter, 0, false}, {}});
  CHECK(portier::replaces_in_place(loaded, loaded));
  auto differs = [&](auto change) {
    Ruleset next = loaded;
    change(next);
    CHECK_FALSE(portier::replaces_in_place(loaded, next));
    CHECK_THROWS_AS(portier::encode_refill_batch(loaded, next, 1), std::invalid_argument);
  };
  differs([](Ruleset& r) { r.chains[1].base->policy_accept = true; });
  differs([](Ruleset& r) { r.chains[1].base->priority = 10; });
  differs([](Ruleset& r) { r.chains[1].base->hook = Hook::forward; });
  differs([](Ruleset& r) { r.chains[0].name = "other"; });
  differs([](Ruleset& r) { std::swap(r.chains[0], r.chains[1]); });
  differs([](Ruleset& r) { r.chains.push_back(Chain{"more", std::nullopt, {}}); });
  differs([](Ruleset& r) { r.chains.pop_back(); });
  differs([](Ruleset& r) { r.table = "portier-test"; });
  differs([](Ruleset& r) { r.owner = true; });
  // Rules, sets and maps may all differ.
  Ruleset next = loaded;
  next.chains[0].rules.push_back(make_rule({}, VerdictKind::accept));
  next.sets.push_back(
      NamedSet{"s", SetKey::ipv4_addr, false, false, false, std::nullopt, std::nullopt, {}});
  CHECK(portier::replaces_in_place(loaded, next));
}

TEST_CASE("encode_replace_batch: an interval port set as nft sends it") {
  const auto batch = portier::encode_replace_batch(
      one_rule_ruleset(
          make_rule({L4ProtoIn{{L4Proto::tcp}}, DestPortIn{{{22, 22}, {137, 139}, {445, 445}}}},
                    VerdictKind::accept, "netbios-in", true)),
      1);
  const auto messages = split(batch);
  REQUIRE(messages.size() == 9);  // begin, 3 table, chain, set, elements, rule, end
  CHECK(messages[5].type == nft(NFT_MSG_NEWSET));
  CHECK(messages[6].type == nft(NFT_MSG_NEWSETELEM));
  CHECK(messages[7].type == nft(NFT_MSG_NEWRULE));
  CHECK(batch.messages[5].what == "port set of rule \"netbios-in\" in chain input");
  CHECK(batch.messages[6].what == "elements of port set of rule \"netbios-in\" in chain input");

  const auto set = parse_set(messages[5].nlh);
  CHECK(std::string(nftnl_set_get_str(set.get(), NFTNL_SET_NAME)) == "__set%d");
  CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_FLAGS) ==
        (NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_INTERVAL));
  CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_TYPE) == 13);  // inet_service
  CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_LEN) == 2);
  CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_ID) == 1);
  CHECK(nftnl_set_get_u32(set.get(), NFTNL_SET_DESC_SIZE) == 7);
  std::uint32_t len = 0;
  const void* udata = nftnl_set_get_data(set.get(), NFTNL_SET_USERDATA, &len);
  // Key byteorder big endian, merge elements, typeof tcp dport (payload, tcp, dport).
  CHECK(bytes_of(udata, len) == std::vector<std::uint8_t>{0, 4,  2, 0, 0, 0,  //
                                                          2, 4,  1, 0, 0, 0,  //
                                                          3, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0,
                                                          4, 8,  0, 0, 0, 1, 4, 2, 0, 0,  0});

  const std::vector<DecodedElement> expected = {
      {0, true, false},   {22, false, false},  {23, true, false}, {137, false, false},
      {140, true, false}, {445, false, false}, {446, true, false}};
  CHECK(elements_of(messages[6].nlh) == expected);

  const auto rule = parse_rule(messages[7].nlh);
  CHECK(expression_names(rule.get()) ==
        std::vector<std::string>{"meta", "cmp", "payload", "lookup", "counter", "immediate"});
}

TEST_CASE("encode_replace_batch: sets of protocols, plain ports and open-ended intervals") {
  Ruleset ruleset;
  ruleset.chains.push_back(
      Chain{"input",
            BaseChain{},
            {make_rule({L4ProtoIn{{L4Proto::tcp, L4Proto::udp}}, DestPortIn{{{53, 53}, {80, 80}}}},
                       VerdictKind::accept),
             make_rule({L4ProtoIn{{L4Proto::udp}}, DestPortIn{{{0, 10}, {60000, 65535}}}},
                       VerdictKind::accept)}});
  const auto batch = portier::encode_replace_batch(ruleset, 1);
  const auto messages = split(batch);
  // begin, 3 table, chain, (set, elems, set, elems, rule), (set, elems, rule), end
  REQUIRE(messages.size() == 14);

  const auto protocols = parse_set(messages[5].nlh);
  CHECK(nftnl_set_get_u32(protocols.get(), NFTNL_SET_FLAGS) ==
        (NFT_SET_ANONYMOUS | NFT_SET_CONSTANT));
  CHECK(nftnl_set_get_u32(protocols.get(), NFTNL_SET_KEY_TYPE) == 12);  // inet_proto
  CHECK(nftnl_set_get_u32(protocols.get(), NFTNL_SET_KEY_LEN) == 1);
  CHECK(nftnl_set_get_u32(protocols.get(), NFTNL_SET_ID) == 1);
  CHECK(nftnl_set_get_u32(protocols.get(), NFTNL_SET_DESC_SIZE) == 2);
  CHECK(elements_of(messages[6].nlh) ==
        std::vector<DecodedElement>{{IPPROTO_TCP, false, false}, {IPPROTO_UDP, false, false}});

  const auto ports = parse_set(messages[7].nlh);
  CHECK(nftnl_set_get_u32(ports.get(), NFTNL_SET_FLAGS) == (NFT_SET_ANONYMOUS | NFT_SET_CONSTANT));
  CHECK(nftnl_set_get_u32(ports.get(), NFTNL_SET_ID) == 2);
  CHECK(nftnl_set_get_u32(ports.get(), NFTNL_SET_DESC_SIZE) == 2);
  std::uint32_t len = 0;
  const void* udata = nftnl_set_get_data(ports.get(), NFTNL_SET_USERDATA, &len);
  // No merge-elements record without intervals; typeof th dport (proto desc 11).
  CHECK(bytes_of(udata, len) == std::vector<std::uint8_t>{0, 4, 2, 0, 0, 0,  3, 20, 0,  4,
                                                          7, 0, 0, 0, 1, 12, 0, 4,  11, 0,
                                                          0, 0, 1, 4, 2, 0,  0, 0});
  CHECK(elements_of(messages[8].nlh) ==
        std::vector<DecodedElement>{{53, false, false}, {80, false, false}});
  const auto rule = parse_rule(messages[9].nlh);
  CHECK(expression_names(rule.get()) ==
        std::vector<std::string>{"meta", "lookup", "payload", "lookup", "immediate"});

  // A range starting at 0 needs no leading end element; one ending at 65535 has no end
  // element but is marked open, and still counts 2 towards the size.
  const auto open = parse_set(messages[10].nlh);
  CHECK(nftnl_set_get_u32(open.get(), NFTNL_SET_ID) == 3);
  CHECK(nftnl_set_get_u32(open.get(), NFTNL_SET_DESC_SIZE) == 4);
  CHECK(elements_of(messages[11].nlh) ==
        std::vector<DecodedElement>{{0, false, false}, {11, true, false}, {60000, false, true}});
}

TEST_CASE("encode_replace_batch: single ports and ranges compile to compares") {
  auto expressions = [](std::vector<PortRange> ports) {
    const auto batch = portier::encode_replace_batch(
        one_rule_ruleset(make_rule({L4ProtoIn{{L4Proto::tcp}}, DestPortIn{std::move(ports)}},
                                   VerdictKind::accept)),
        1);
    const auto messages = split(batch);
    REQUIRE(messages.size() == 7);
    return expression_names(parse_rule(messages[5].nlh).get());
  };
  CHECK(expressions({{22, 22}}) ==
        std::vector<std::string>{"meta", "cmp", "payload", "cmp", "immediate"});
  CHECK(expressions({{0, 1023}}) ==
        std::vector<std::string>{"meta", "cmp", "payload", "cmp", "cmp", "immediate"});
}

TEST_CASE("encode_replace_batch: conntrack, loopback and reject verdicts") {
  const auto batch = portier::encode_replace_batch(
      one_rule_ruleset(
          make_rule({LoopbackInterface{true}, CtState{ct_new}, L4ProtoIn{{L4Proto::tcp}}},
                    VerdictKind::reject_tcp_reset)),
      1);
  const auto messages = split(batch);
  REQUIRE(messages.size() == 7);
  const auto rule = parse_rule(messages[5].nlh);
  CHECK(expression_names(rule.get()) ==
        std::vector<std::string>{"meta", "cmp", "ct", "bitwise", "cmp", "meta", "cmp", "reject"});
  struct Seen {
    std::uint32_t meta_key = 0, ct_key = 99, reject_type = 99, reject_code = 99;
    std::vector<std::uint8_t> mask;
  } seen;
  nftnl_expr_foreach(
      rule.get(),
      [](nftnl_expr* e, void* data) {
        auto* s = static_cast<Seen*>(data);
        const std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
        std::uint32_t len = 0;
        if (name == "meta" && s->meta_key == 0)
          s->meta_key = nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY);
        if (name == "ct") s->ct_key = nftnl_expr_get_u32(e, NFTNL_EXPR_CT_KEY);
        if (name == "bitwise") {
          const void* mask = nftnl_expr_get(e, NFTNL_EXPR_BITWISE_MASK, &len);
          s->mask = bytes_of(mask, len);
        }
        if (name == "reject") {
          s->reject_type = nftnl_expr_get_u32(e, NFTNL_EXPR_REJECT_TYPE);
          s->reject_code = nftnl_expr_get_u8(e, NFTNL_EXPR_REJECT_CODE);
        }
        return 0;
      },
      &seen);
  CHECK(seen.meta_key == NFT_META_OIF);
  CHECK(seen.ct_key == NFT_CT_STATE);
  const std::uint32_t new_bit = ct_new;
  CHECK(seen.mask == bytes_of(&new_bit, sizeof new_bit));
  CHECK(seen.reject_type == NFT_REJECT_TCP_RST);
  CHECK(seen.reject_code == 0);
}

TEST_CASE("encode_replace_batch: a long element list is split, the parts sharing one seq") {
  std::vector<PortRange> ports;
  for (std::uint16_t port = 1; port <= 10000; ++port) ports.push_back({port, port});
  const auto batch = portier::encode_replace_batch(
      one_rule_ruleset(
          make_rule({L4ProtoIn{{L4Proto::udp}}, DestPortIn{ports}}, VerdictKind::drop)),
      7);
  const auto messages = split(batch);
  std::vector<const Message*> element_messages;
  for (const Message& m : messages) {
    if (m.type == nft(NFT_MSG_NEWSETELEM)) element_messages.push_back(&m);
  }
  // 16 bytes per element, at most 65535 per element list attribute.
  REQUIRE(element_messages.size() == 3);
  std::size_t total = 0;
  for (const Message* m : element_messages) {
    CHECK(m->seq == element_messages.front()->seq);
    total += elements_of(m->nlh).size();
  }
  CHECK(total == 10000);
  // The first part holds 4095 elements; the 4096th did not fit and opens the second part
  // under the next nest number, as nft numbers them.
  std::vector<std::uint16_t> numbers;
  const auto second = elements_of(element_messages[1]->nlh, &numbers);
  CHECK(second.front().port == 4096);
  CHECK(numbers.front() == 4097);
  CHECK(batch.messages.size() == messages.size());
  CHECK(batch.next_seq == messages.back().seq + 1);
  CHECK(batch.find(element_messages.front()->seq)->what ==
        "elements of port set of rule 1 in chain input");
}

TEST_CASE("encode_replace_batch: the bytes do not depend on earlier heap contents") {
  const Ruleset ruleset =
      one_rule_ruleset(make_rule({CtState{ct_established}}, VerdictKind::accept, "x"));
  const auto first = portier::encode_replace_batch(ruleset, 1);
  std::vector<std::vector<char>> noise;
  for (int i = 0; i < 16; ++i) noise.emplace_back(256 * 1024, static_cast<char>(0xa5));
  noise.clear();
  CHECK(portier::encode_replace_batch(ruleset, 1).bytes == first.bytes);
}

TEST_CASE("encode_replace_batch: refuses an IR the kernel could not express") {
  CHECK_THROWS_AS(
      portier::encode_replace_batch(
          one_rule_ruleset(make_rule({DestPortIn{{{22, 22}}}}, VerdictKind::accept)), 1),
      std::invalid_argument);
  CHECK_THROWS_AS(
      portier::encode_replace_batch(
          one_rule_ruleset(make_rule({}, VerdictKind::accept, std::string(129, 'x'))), 1),
      std::invalid_argument);
  Ruleset unnamed;
  unnamed.table.clear();
  CHECK_THROWS_AS(portier::encode_replace_batch(unnamed, 1), std::invalid_argument);
}

namespace {

Address ip(const std::string& text) {
  Address address;
  address.family = text.find(':') == std::string::npos ? Family::ipv4 : Family::ipv6;
  REQUIRE(inet_pton(address.family == Family::ipv4 ? AF_INET : AF_INET6, text.c_str(),
                    address.bytes.data()) == 1);
  return address;
}

AddressRange span(const std::string& first, const std::string& last) {
  return {ip(first), ip(last)};
}

std::vector<std::string> rule_expressions(const Ruleset& ruleset) {
  const auto batch = portier::encode_replace_batch(ruleset, 1);
  const auto messages = split(batch);
  for (auto m = messages.rbegin(); m != messages.rend(); ++m) {
    if (m->type == nft(NFT_MSG_NEWRULE)) return expression_names(parse_rule(m->nlh).get());
  }
  FAIL("no rule in the batch");
  return {};
}

std::vector<std::string> expressions_of(std::vector<Match> matches,
                                        VerdictKind kind = VerdictKind::accept) {
  return rule_expressions(one_rule_ruleset(make_rule(std::move(matches), kind)));
}

using Names = std::vector<std::string>;

// Element keys (as hex) with an "e" suffix for interval ends and "o" for open starts.
std::vector<std::string> element_keys(const nlmsghdr* nlh) {
  std::vector<std::string> keys;
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS) return MNL_CB_OK;
        auto* out = static_cast<std::vector<std::string>*>(data);
        for (const nlattr* element : nested(attr)) {
          std::string text;
          std::string marks;
          for (const nlattr* field : nested(element)) {
            if (mnl_attr_get_type(field) == NFTA_SET_ELEM_KEY) {
              for (const nlattr* value : nested(field)) {
                const auto* key = static_cast<const std::uint8_t*>(mnl_attr_get_payload(value));
                for (std::uint16_t i = 0; i < mnl_attr_get_payload_len(value); ++i) {
                  static const char* kHex = "0123456789abcdef";
                  text += kHex[key[i] >> 4];
                  text += kHex[key[i] & 15];
                }
              }
            }
            if (mnl_attr_get_type(field) == NFTA_SET_ELEM_FLAGS) marks += "e";
            if (mnl_attr_get_type(field) == NFTA_SET_ELEM_USERDATA) marks += "o";
          }
          out->push_back(text + marks);
        }
        return MNL_CB_OK;
      },
      &keys);
  return keys;
}

std::vector<Message> of_type(const std::vector<Message>& messages, std::uint16_t type) {
  std::vector<Message> found;
  for (const Message& m : messages) {
    if (m.type == nft(type)) found.push_back(m);
  }
  return found;
}

std::optional<std::uint32_t> table_flags(const nlmsghdr* nlh) {
  std::unique_ptr<nftnl_table, NftnlFree> table(nftnl_table_alloc());
  REQUIRE(nftnl_table_nlmsg_parse(nlh, table.get()) >= 0);
  if (!nftnl_table_is_set(table.get(), NFTNL_TABLE_FLAGS)) return std::nullopt;
  return nftnl_table_get_u32(table.get(), NFTNL_TABLE_FLAGS);
}

}  // namespace

TEST_CASE("encode_replace_batch: owned and persistent tables") {
  Ruleset ruleset;
  auto flags = [&ruleset] {
    // The messages point into the batch's bytes: keep the batch alive while reading them.
    const auto batch = portier::encode_replace_batch(ruleset, 1);
    const auto messages = split(batch);
    return std::vector<std::optional<std::uint32_t>>{table_flags(messages[1].nlh),
                                                     table_flags(messages[3].nlh)};
  };
  // Without owner: flags 0 twice, as nft sends `table inet portier` and the table block.
  CHECK(flags() == std::vector<std::optional<std::uint32_t>>{0u, 0u});
  // With owner the first NEWTABLE carries no flags: an update with flags 0 would be refused
  // on the table this socket owns (docs/nftables-owner.md).
  ruleset.owner = true;
  CHECK(flags() == std::vector<std::optional<std::uint32_t>>{std::nullopt, 0x2u});
  ruleset.persist = true;
  CHECK(flags() == std::vector<std::optional<std::uint32_t>>{std::nullopt, 0x6u});
  ruleset.owner = false;
  CHECK_THROWS_AS(portier::encode_replace_batch(ruleset, 1), std::invalid_argument);
}

TEST_CASE("encode_replace_batch: named sets after the chains, with nft's ids and flags") {
  Ruleset ruleset;
  ruleset.sets = {
      NamedSet{"block",
               SetKey::ipv4_addr,
               true,
               false,
               false,
               std::nullopt,
               std::nullopt,
               {span("10.0.0.0", "10.255.255.255"), span("192.168.1.7", "192.168.1.7"),
                span("224.0.0.0", "255.255.255.255")}},
      NamedSet{"meter", SetKey::ipv6_addr, false, true, true, 60, 65535, {}},
      NamedSet{"ports",
               SetKey::inet_service,
               false,
               false,
               false,
               std::nullopt,
               std::nullopt,
               {{port_element(22), port_element(22)}, {port_element(80), port_element(80)}}}};
  ruleset.chains.push_back(
      Chain{"input",
            BaseChain{},
            {make_rule({AddressInSet{Family::ipv4, false, "block"}}, VerdictKind::drop),
             make_rule({L4ProtoIn{{L4Proto::tcp, L4Proto::udp}},
                        MeterOver{"meter", Family::ipv6, Limit{3, RateUnit::minute, 7, true}}},
                       VerdictKind::drop)}});
  const auto batch = portier::encode_replace_batch(ruleset, 1);
  const auto messages = split(batch);
  // begin, 3 table, chain, (set, elems), (set), (set, elems), rule, (set, elems, rule), end
  const std::vector<std::uint16_t> types = {
      NFNL_MSG_BATCH_BEGIN,    nft(NFT_MSG_NEWTABLE), nft(NFT_MSG_DELTABLE),
      nft(NFT_MSG_NEWTABLE),   nft(NFT_MSG_NEWCHAIN), nft(NFT_MSG_NEWSET),
      nft(NFT_MSG_NEWSETELEM), nft(NFT_MSG_NEWSET),   nft(NFT_MSG_NEWSET),
      nft(NFT_MSG_NEWSETELEM), nft(NFT_MSG_NEWRULE),  nft(NFT_MSG_NEWSET),
      nft(NFT_MSG_NEWSETELEM), nft(NFT_MSG_NEWRULE),  NFNL_MSG_BATCH_END};
  REQUIRE(messages.size() == types.size());
  for (std::size_t i = 0; i < types.size(); ++i) CHECK(messages[i].type == types[i]);
  CHECK(batch.messages[5].what == "set block");
  CHECK(batch.messages[6].what == "elements of set block");

  const auto block = parse_set(messages[5].nlh);
  CHECK(std::string(nftnl_set_get_str(block.get(), NFTNL_SET_NAME)) == "block");
  CHECK(nftnl_set_get_u32(block.get(), NFTNL_SET_ID) == 1);
  CHECK(nftnl_set_get_u32(block.get(), NFTNL_SET_FLAGS) == NFT_SET_INTERVAL);
  CHECK(nftnl_set_get_u32(block.get(), NFTNL_SET_KEY_TYPE) == 7);
  CHECK(nftnl_set_get_u32(block.get(), NFTNL_SET_KEY_LEN) == 4);
  CHECK_FALSE(nftnl_set_is_set(block.get(), NFTNL_SET_DESC_SIZE));
  CHECK_FALSE(nftnl_set_is_set(block.get(), NFTNL_SET_TIMEOUT));
  // Boundaries: an end at 0, each range's start and one past its end; the last range
  // runs to the top of the address space and is marked open instead.
  CHECK(element_keys(messages[6].nlh) == std::vector<std::string>{"00000000e", "0a000000",
                                                                  "0b000000e", "c0a80107",
                                                                  "c0a80108e", "e0000000o"});

  const auto meter = parse_set(messages[7].nlh);
  CHECK(nftnl_set_get_u32(meter.get(), NFTNL_SET_ID) == 2);
  CHECK(nftnl_set_get_u32(meter.get(), NFTNL_SET_FLAGS) == (NFT_SET_TIMEOUT | NFT_SET_EVAL));
  CHECK(nftnl_set_get_u32(meter.get(), NFTNL_SET_KEY_TYPE) == 8);
  CHECK(nftnl_set_get_u32(meter.get(), NFTNL_SET_KEY_LEN) == 16);
  CHECK(nftnl_set_get_u64(meter.get(), NFTNL_SET_TIMEOUT) == 60000);
  CHECK(nftnl_set_get_u32(meter.get(), NFTNL_SET_DESC_SIZE) == 65535);

  const auto ports = parse_set(messages[8].nlh);
  CHECK(nftnl_set_get_u32(ports.get(), NFTNL_SET_FLAGS) == 0);
  CHECK(nftnl_set_get_u32(ports.get(), NFTNL_SET_KEY_TYPE) == 13);
  CHECK(element_keys(messages[9].nlh) == std::vector<std::string>{"0016", "0050"});

  // The rule looks the named set up by name and id; anonymous sets number on after them.
  CHECK(expression_names(parse_rule(messages[10].nlh).get()) ==
        Names{"meta", "cmp", "payload", "lookup", "immediate"});
  CHECK(nftnl_set_get_u32(parse_set(messages[11].nlh).get(), NFTNL_SET_ID) == 4);
  CHECK(expression_names(parse_rule(messages[13].nlh).get()) ==
        Names{"meta", "lookup", "meta", "cmp", "payload", "dynset", "immediate"});

  Ruleset missing = ruleset;
  missing.sets.erase(missing.sets.begin());
  CHECK_THROWS_AS(portier::encode_replace_batch(missing, 1), std::invalid_argument);
}

TEST_CASE("encode_replace_batch: address matches as nft encodes them") {
  auto saddr = [](std::vector<AddressRange> ranges, Family family = Family::ipv4) {
    return expressions_of({AddressIn{family, false, std::move(ranges)}});
  };
  const Names single{"meta", "cmp", "payload", "cmp", "immediate"};
  CHECK(saddr({span("10.0.0.1", "10.0.0.1")}) == single);
  CHECK(saddr({span("10.0.0.0", "10.255.255.255")}) == single);  // a shorter load
  CHECK(saddr({span("10.16.0.0", "10.31.255.255")}) ==
        Names{"meta", "cmp", "payload", "bitwise", "cmp", "immediate"});
  CHECK(saddr({span("10.0.0.0", "10.0.0.5")}) ==
        Names{"meta", "cmp", "payload", "cmp", "cmp", "immediate"});
  CHECK(saddr({span("10.0.0.0", "10.255.255.255"), span("192.168.1.7", "192.168.1.7")}) ==
        Names{"meta", "cmp", "payload", "lookup", "immediate"});
  CHECK(saddr({span("fd00::", "fd00::ffff:ffff:ffff:ffff")}, Family::ipv6) == single);
  // A second address match needs no second `meta nfproto`.
  CHECK(expressions_of({AddressIn{Family::ipv4, false, {span("1.1.1.1", "1.1.1.1")}},
                        AddressIn{Family::ipv4, true, {span("2.2.2.2", "2.2.2.2")}}}) ==
        Names{"meta", "cmp", "payload", "cmp", "payload", "cmp", "immediate"});

  // The /8 loads one byte at the source address, the /12 all four under a mask.
  const auto batch = portier::encode_replace_batch(
      one_rule_ruleset(
          make_rule({AddressIn{Family::ipv4, true, {span("10.16.0.0", "10.31.255.255")}}},
                    VerdictKind::accept)),
      1);
  const auto rule = parse_rule(split(batch)[5].nlh);
  struct Seen {
    std::uint32_t offset = 0, len = 0;
    std::vector<std::uint8_t> mask, value;
  } seen;
  nftnl_expr_foreach(
      rule.get(),
      [](nftnl_expr* e, void* data) {
        auto* s = static_cast<Seen*>(data);
        const std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
        std::uint32_t len = 0;
        if (name == "payload") {
          s->offset = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
          s->len = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN);
        }
        if (name == "bitwise") {
          const void* mask = nftnl_expr_get(e, NFTNL_EXPR_BITWISE_MASK, &len);
          s->mask = bytes_of(mask, len);
        }
        if (name == "cmp") {
          const void* value = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);
          s->value = bytes_of(value, len);
        }
        return 0;
      },
      &seen);
  CHECK(seen.offset == 16);
  CHECK(seen.len == 4);
  CHECK(seen.mask == std::vector<std::uint8_t>{0xff, 0xf0, 0, 0});
  CHECK(seen.value == std::vector<std::uint8_t>{10, 16, 0, 0});
}

TEST_CASE("encode_replace_batch: interfaces, ICMP, socket and TCP flag matches") {
  CHECK(expressions_of({InterfaceNameIn{false, {"eth0"}}}) == Names{"meta", "cmp", "immediate"});
  CHECK(expressions_of({InterfaceNameIn{false, {"a", "b"}}}) ==
        Names{"meta", "lookup", "immediate"});
  CHECK(expressions_of({CtStatusDnat{}}) == Names{"ct", "bitwise", "cmp", "immediate"});
  CHECK(expressions_of({IcmpTypeIn{false, {8}}}) ==
        Names{"meta", "cmp", "meta", "cmp", "payload", "cmp", "immediate"});
  CHECK(expressions_of({L4ProtoIn{{L4Proto::icmp}}, IcmpTypeIn{false, {0, 8}}}) ==
        Names{"meta", "cmp", "payload", "lookup", "immediate"});
  CHECK(expressions_of({TcpSyn{}}) ==
        Names{"meta", "cmp", "payload", "bitwise", "cmp", "immediate"});
  CHECK(expressions_of({L4ProtoIn{{L4Proto::tcp}}, DestPortIn{{{80, 80}}}, TcpSyn{}}) ==
        Names{"meta", "cmp", "payload", "cmp", "payload", "bitwise", "cmp", "immediate"});
  CHECK(expressions_of({SocketUid{33, true}}) == Names{"meta", "cmp", "immediate"});
  // `socket cgroupv2 level 1 @owners`: the socket's cgroup id looked up in a named set.
  auto cgroup_lookup = [](SetKey key) {
    Ruleset ruleset = one_rule_ruleset(make_rule({SocketCgroup{1, "owners"}}, VerdictKind::accept));
    NamedSet owners;
    owners.name = "owners";
    owners.key = key;
    owners.cgroups = {{"system.slice/ssh.service", 4242}};
    if (key != SetKey::cgroupv2) owners.cgroups.clear();
    ruleset.sets.push_back(owners);
    return rule_expressions(ruleset);
  };
  CHECK(cgroup_lookup(SetKey::cgroupv2) == Names{"socket", "lookup", "immediate"});
  CHECK(expressions_of({Limit{10, RateUnit::second, 5, false}}) == Names{"limit", "immediate"});
  CHECK_THROWS_AS(cgroup_lookup(SetKey::ipv4_addr), std::invalid_argument);  // not a set of cgroups
  CHECK_THROWS_AS(expressions_of({Limit{10, RateUnit::second, 0, false}}), std::invalid_argument);

  // The wildcard compares the prefix bytes only; an exact name all 16.
  auto cmp_data = [](const std::string& name) {
    const auto batch = portier::encode_replace_batch(
        one_rule_ruleset(make_rule({InterfaceNameIn{true, {name}}}, VerdictKind::accept)), 1);
    const auto rule = parse_rule(split(batch)[5].nlh);
    std::vector<std::uint8_t> data;
    nftnl_expr_foreach(
        rule.get(),
        [](nftnl_expr* e, void* out) {
          std::uint32_t len = 0;
          if (std::string(nftnl_expr_get_str(e, NFTNL_EXPR_NAME)) == "cmp") {
            const void* value = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);
            *static_cast<std::vector<std::uint8_t>*>(out) = bytes_of(value, len);
          }
          return 0;
        },
        &data);
    return data;
  };
  CHECK(cmp_data("ppp*") == std::vector<std::uint8_t>{'p', 'p', 'p'});
  std::vector<std::uint8_t> eth0(16, 0);
  std::copy_n("eth0", 4, eth0.begin());
  CHECK(cmp_data("eth0") == eth0);
}

TEST_CASE("encode_replace_batch: log, NAT, MSS clamping and verdict maps") {
  Rule logged = make_rule({}, VerdictKind::none, {}, true);
  logged.log = Log{"portier x ", 3};
  CHECK(rule_expressions(one_rule_ruleset(logged)) == Names{"counter", "log"});

  Rule dnat = make_rule({L4ProtoIn{{L4Proto::tcp}}, DestPortIn{{{80, 80}}}}, VerdictKind::dnat);
  dnat.verdict.nat_address = ip("192.168.1.10");
  dnat.verdict.nat_port = 8080;
  CHECK(rule_expressions(one_rule_ruleset(dnat)) ==
        Names{"meta", "cmp", "payload", "cmp", "immediate", "immediate", "nat"});
  dnat.verdict.nat_port.reset();
  CHECK(rule_expressions(one_rule_ruleset(dnat)) ==
        Names{"meta", "cmp", "payload", "cmp", "immediate", "nat"});
  Rule port_without_protocol = make_rule({}, VerdictKind::dnat);
  port_without_protocol.verdict.nat_address = ip("fd00::2");
  port_without_protocol.verdict.nat_port = 80;
  CHECK_THROWS_AS(portier::encode_replace_batch(one_rule_ruleset(port_without_protocol), 1),
                  std::invalid_argument);

  CHECK(expressions_of({InterfaceNameIn{true, {"eth0"}}}, VerdictKind::masquerade) ==
        Names{"meta", "cmp", "masq"});
  CHECK(expressions_of({TcpSyn{}}, VerdictKind::clamp_mss) ==
        Names{"meta", "cmp", "payload", "bitwise", "cmp", "rt", "byteorder", "exthdr"});

  Rule vmap = make_rule({}, VerdictKind::vmap);
  vmap.verdict.vmap = {{"br-lan", VerdictKind::accept, {}}, {"eth0", VerdictKind::go_to, "wan"}};
  const auto batch = portier::encode_replace_batch(one_rule_ruleset(vmap), 1);
  const auto messages = split(batch);
  REQUIRE(messages.size() == 9);
  const auto map = parse_set(messages[5].nlh);
  CHECK(std::string(nftnl_set_get_str(map.get(), NFTNL_SET_NAME)) == "__map%d");
  CHECK(nftnl_set_get_u32(map.get(), NFTNL_SET_FLAGS) ==
        (NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_MAP));
  CHECK(nftnl_set_get_u32(map.get(), NFTNL_SET_KEY_TYPE) == 41);  // ifname
  CHECK(nftnl_set_get_u32(map.get(), NFTNL_SET_KEY_LEN) == 16);
  CHECK(nftnl_set_get_u32(map.get(), NFTNL_SET_DATA_TYPE) == NFT_DATA_VERDICT);
  CHECK(batch.messages[5].what == "verdict map of rule 1 in chain input");
  // Verdicts of the elements: accept, then goto "wan".
  struct Verdicts {
    std::vector<std::uint32_t> codes;
    std::vector<std::string> chains;
  } verdicts;
  mnl_attr_parse(
      messages[6].nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS) return MNL_CB_OK;
        auto* v = static_cast<Verdicts*>(data);
        for (const nlattr* element : nested(attr)) {
          for (const nlattr* field : nested(element)) {
            if (mnl_attr_get_type(field) != NFTA_SET_ELEM_DATA) continue;
            for (const nlattr* verdict : nested(field)) {
              for (const nlattr* part : nested(verdict)) {
                if (mnl_attr_get_type(part) == NFTA_VERDICT_CODE)
                  v->codes.push_back(ntohl(mnl_attr_get_u32(part)));
                if (mnl_attr_get_type(part) == NFTA_VERDICT_CHAIN)
                  v->chains.push_back(mnl_attr_get_str(part));
              }
            }
          }
        }
        return MNL_CB_OK;
      },
      &verdicts);
  CHECK(verdicts.codes ==
        std::vector<std::uint32_t>{NF_ACCEPT, static_cast<std::uint32_t>(NFT_GOTO)});
  CHECK(verdicts.chains == std::vector<std::string>{"wan"});
  CHECK(expression_names(parse_rule(messages[7].nlh).get()) == Names{"meta", "lookup"});

  vmap.verdict.vmap = {{"eth0", VerdictKind::masquerade, {}}};
  CHECK_THROWS_AS(portier::encode_replace_batch(one_rule_ruleset(vmap), 1), std::invalid_argument);
  CHECK_THROWS_AS(
      portier::encode_replace_batch(one_rule_ruleset(make_rule({}, VerdictKind::none)), 1),
      std::invalid_argument);
}

TEST_CASE("encode_replace_batch: a big named interval set in one batch, split like nft does") {
  NamedSet set{"big", SetKey::ipv4_addr, true, false, false, std::nullopt, std::nullopt, {}};
  for (std::uint32_t i = 0; i < 100000; ++i) {
    Address first;
    const std::uint32_t network = (1u << 24) + i * 8;
    for (int b = 0; b < 4; ++b) first.bytes[b] = static_cast<std::uint8_t>(network >> (24 - 8 * b));
    Address last = first;
    last.bytes[3] = static_cast<std::uint8_t>(last.bytes[3] + 3);
    set.elements.push_back({first, last});
  }
  Ruleset ruleset;
  ruleset.sets.push_back(std::move(set));
  const auto batch = portier::encode_replace_batch(ruleset, 1);
  const auto messages = split(batch);
  const auto parts = of_type(messages, NFT_MSG_NEWSETELEM);
  REQUIRE(parts.size() > 1);
  std::size_t total = 0;
  for (const Message& part : parts) {
    CHECK(part.seq == parts.front().seq);
    CHECK(part.nlh->nlmsg_len <= UINT16_MAX + 256);
    total += element_keys(part.nlh).size();
  }
  CHECK(total == 1 + 2 * 100000);  // the leading end at 0.0.0.0, then start and end per prefix
  CHECK(batch.messages.back().type == NFNL_MSG_BATCH_END);
}

namespace {

// Attributes of a NEWRULE/DELRULE message beyond what libnftnl's rule parser keeps.
struct RulePlacement {
  std::optional<std::uint64_t> handle;
  std::optional<std::uint64_t> position;
  std::optional<std::uint32_t> id;
  std::optional<std::uint32_t> position_id;
  std::string chain;
};

RulePlacement placement_of(const nlmsghdr* nlh) {
  RulePlacement placement;
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        auto* p = static_cast<RulePlacement*>(data);
        switch (mnl_attr_get_type(attr)) {
          case NFTA_RULE_HANDLE:
            p->handle = be64toh(mnl_attr_get_u64(attr));
            break;
          case NFTA_RULE_POSITION:
            p->position = be64toh(mnl_attr_get_u64(attr));
            break;
          case NFTA_RULE_ID:
            p->id = ntohl(mnl_attr_get_u32(attr));
            break;
          case NFTA_RULE_POSITION_ID:
            p->position_id = ntohl(mnl_attr_get_u32(attr));
            break;
          case NFTA_RULE_CHAIN:
            p->chain = mnl_attr_get_str(attr);
            break;
        }
        return MNL_CB_OK;
      },
      &placement);
  return placement;
}

// One element of a set edit: its key bytes, flags and timeout.
struct EditedElement {
  std::vector<std::uint8_t> key;
  bool interval_end = false;
  std::optional<std::uint64_t> timeout_ms;
  friend bool operator==(const EditedElement&, const EditedElement&) = default;
};

struct ElementListMessage {
  std::string table;
  std::string set;
  bool has_set_id = false;
  std::vector<EditedElement> elements;
};

ElementListMessage element_list_of(const nlmsghdr* nlh) {
  ElementListMessage list;
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        auto* l = static_cast<ElementListMessage*>(data);
        switch (mnl_attr_get_type(attr)) {
          case NFTA_SET_ELEM_LIST_TABLE:
            l->table = mnl_attr_get_str(attr);
            break;
          case NFTA_SET_ELEM_LIST_SET:
            l->set = mnl_attr_get_str(attr);
            break;
          case NFTA_SET_ELEM_LIST_SET_ID:
            l->has_set_id = true;
            break;
          case NFTA_SET_ELEM_LIST_ELEMENTS:
            for (const nlattr* element : nested(attr)) {
              EditedElement decoded;
              for (const nlattr* field : nested(element)) {
                switch (mnl_attr_get_type(field)) {
                  case NFTA_SET_ELEM_KEY:
                    for (const nlattr* value : nested(field)) {
                      decoded.key =
                          bytes_of(mnl_attr_get_payload(value),
                                   static_cast<std::uint32_t>(mnl_attr_get_payload_len(value)));
                    }
                    break;
                  case NFTA_SET_ELEM_FLAGS:
                    decoded.interval_end =
                        (ntohl(mnl_attr_get_u32(field)) & NFT_SET_ELEM_INTERVAL_END) != 0;
                    break;
                  case NFTA_SET_ELEM_TIMEOUT:
                    decoded.timeout_ms = be64toh(mnl_attr_get_u64(field));
                    break;
                }
              }
              l->elements.push_back(decoded);
            }
            break;
        }
        return MNL_CB_OK;
      },
      &list);
  return list;
}

EditedElement element(std::vector<std::uint8_t> key, bool end = false,
                      std::optional<std::uint64_t> timeout_ms = std::nullopt) {
  return {std::move(key), end, timeout_ms};
}

}  // namespace

TEST_CASE("encode_replace_batch: every rule asks for an echo, and rule_seqs names them") {
  Ruleset ruleset;
  ruleset.chains.push_back(Chain{"svc", std::nullopt, {make_rule({}, VerdictKind::drop)}});
  ruleset.chains.push_back(
      Chain{"input",
            BaseChain{},
            {make_rule({L4ProtoIn{{L4Proto::tcp}}, DestPortIn{{{22, 22}, {80, 80}}}},
                       VerdictKind::accept),
             make_rule({}, VerdictKind::accept)}});
  const auto batch = portier::encode_replace_batch(ruleset, 50);
  std::vector<std::uint32_t> rule_seqs;
  for (const Message& m : split(batch)) {
    CAPTURE(m.type);
    const bool is_rule = m.type == nft(NFT_MSG_NEWRULE);
    CHECK(((m.flags & NLM_F_ECHO) != 0) == is_rule);
    if (is_rule) rule_seqs.push_back(m.seq);
  }
  CHECK(rule_seqs.size() == 3);
  CHECK(batch.rule_seqs == rule_seqs);
}

TEST_CASE("encode_edit_batch: insertions by position, then removals by handle") {
  Ruleset loaded;
  loaded.sets.push_back(
      NamedSet{"block", SetKey::ipv4_addr, true, false, false, std::nullopt, std::nullopt, {}});
  const Rule first = make_rule({}, VerdictKind::accept, "first");
  const Rule ports = make_rule({L4ProtoIn{{L4Proto::tcp}}, DestPortIn{{{22, 22}, {80, 80}}}},
                               VerdictKind::accept, "ports");
  const Rule lookup =
      make_rule({AddressInSet{Family::ipv4, false, "block"}}, VerdictKind::drop, "", true);
  const Rule svc = make_rule({}, VerdictKind::drop, "svc");
  const std::vector<portier::RuleInsertion> insertions = {
      {"input", 0, &first},    // at the start
      {"input", 12, &ports},   // after handle 12
      {"input", 12, &lookup},  // after the one before: after handle 12 too, but second
      {"svc", 0, &svc},        // another chain: at its start again
  };
  const std::vector<portier::RuleRemoval> removals = {{"input", 7}, {"svc", 9}};
  const auto batch = portier::encode_edit_batch({.table = "portier",
                                                 .sets = loaded.sets,
                                                 .removals = removals,
                                                 .insertions = insertions,
                                                 .first_seq = 100});
  const auto messages = split(batch);
  const std::vector<std::uint16_t> expected_types = {
      NFNL_MSG_BATCH_BEGIN, nft(NFT_MSG_NEWRULE), nft(NFT_MSG_NEWSET),  nft(NFT_MSG_NEWSETELEM),
      nft(NFT_MSG_NEWRULE), nft(NFT_MSG_NEWRULE), nft(NFT_MSG_NEWRULE), nft(NFT_MSG_DELRULE),
      nft(NFT_MSG_DELRULE), NFNL_MSG_BATCH_END};
  REQUIRE(messages.size() == expected_types.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    CAPTURE(i);
    CHECK(messages[i].type == expected_types[i]);
    CHECK(messages[i].seq == 100 + i);
  }
  CHECK(batch.rule_seqs == std::vector<std::uint32_t>{101, 104, 105, 106});
  CHECK(batch.next_seq == 110);

  // At the start: no APPEND, no position (the kernel then puts the rule first).
  const std::uint16_t rule_flags = NLM_F_CREATE | NLM_F_ECHO | NLM_F_ACK;
  CHECK((messages[1].flags & (rule_flags | NLM_F_APPEND)) == rule_flags);
  auto at_start = placement_of(messages[1].nlh);
  CHECK(at_start.chain == "input");
  CHECK_FALSE(at_start.position);
  CHECK_FALSE(at_start.position_id);
  CHECK(at_start.id == 1u);
  // After a handle: APPEND and the handle as position.
  CHECK((messages[4].flags & (rule_flags | NLM_F_APPEND)) == (rule_flags | NLM_F_APPEND));
  auto after = placement_of(messages[4].nlh);
  CHECK(after.position == 12u);
  CHECK_FALSE(after.position_id);
  CHECK(after.id == 2u);
  // The second after the same handle: after the first, by its rule id.
  CHECK((messages[5].flags & NLM_F_APPEND) != 0);
  auto second = placement_of(messages[5].nlh);
  CHECK_FALSE(second.position);
  CHECK(second.position_id == 2u);
  CHECK(second.id == 3u);
  auto other_chain = placement_of(messages[6].nlh);
  CHECK(other_chain.chain == "svc");
  CHECK((messages[6].flags & NLM_F_APPEND) == 0);
  CHECK_FALSE(other_chain.position);
  CHECK_FALSE(other_chain.position_id);

  // The anonymous set gets an id after the table's named sets; the named set is looked
  // up by name.
  const auto anonymous = parse_set(messages[2].nlh);
  CHECK(nftnl_set_get_u32(anonymous.get(), NFTNL_SET_ID) == 2);
  const auto looked_up = parse_rule(messages[5].nlh);
  CHECK(expression_names(looked_up.get()) ==
        std::vector<std::string>{"meta", "cmp", "payload", "lookup", "counter", "immediate"});

  auto removal = placement_of(messages[7].nlh);
  CHECK(removal.chain == "input");
  CHECK(removal.handle == 7u);
  CHECK((messages[7].flags & (NLM_F_CREATE | NLM_F_APPEND | NLM_F_ECHO)) == 0);
  CHECK((messages[7].flags & NLM_F_ACK) != 0);
  CHECK(placement_of(messages[8].nlh).handle == 9u);

  CHECK(batch.messages[1].what == "rule \"first\" in chain input");
  CHECK(batch.messages[5].what == "inserted rule 3 in chain input");
  CHECK(batch.messages[7].what == "deletion of rule handle 7 in chain input");
  CHECK(batch.messages[8].what == "deletion of rule handle 9 in chain svc");
}

TEST_CASE("encode_edit_batch: refuses what it cannot send") {
  const Rule lookup = make_rule({AddressInSet{Family::ipv4, false, "nope"}}, VerdictKind::drop);
  const std::vector<portier::RuleInsertion> insertion = {{"input", 0, &lookup}};
  CHECK_THROWS_WITH_AS(
      portier::encode_edit_batch({.table = "portier", .insertions = insertion, .first_seq = 1}),
      "no set named 'nope' in the table", std::invalid_argument);
  const std::vector<portier::RuleRemoval> no_handle = {{"input", 0}};
  CHECK_THROWS_WITH_AS(
      portier::encode_edit_batch({.table = "portier", .removals = no_handle, .first_seq = 1}),
      "rule removal without a handle", std::invalid_argument);
  const std::vector<portier::RuleInsertion> no_rule = {{"input", 0, nullptr}};
  CHECK_THROWS_AS(
      portier::encode_edit_batch({.table = "portier", .insertions = no_rule, .first_seq = 1}),
      std::invalid_argument);
  // Nothing to do is an empty transaction.
  const auto empty = portier::encode_edit_batch({.table = "portier", .first_seq = 1});
  CHECK(split(empty).size() == 2);
  CHECK(empty.rule_seqs.empty());
}

TEST_CASE(
    "encode_set_edit_batch: interval elements as the replace batch makes them, removals first") {
  const std::vector<AddressRange> add = {span("10.0.0.1", "10.0.0.1"),
                                         span("10.1.0.0", "10.1.255.255"),
                                         span("224.0.0.0", "255.255.255.255")};
  const std::vector<AddressRange> remove = {span("192.168.1.7", "192.168.1.7")};
  const portier::SetElementChange change{"block", SetKey::ipv4_addr, true, add, remove, 90};
  const auto batch = portier::encode_set_edit_batch("portier", change, 10);
  const auto messages = split(batch);
  REQUIRE(messages.size() == 4);
  CHECK(messages[1].type == nft(NFT_MSG_DELSETELEM));
  CHECK(messages[2].type == nft(NFT_MSG_NEWSETELEM));
  CHECK((messages[1].flags & NLM_F_CREATE) == 0);
  CHECK((messages[2].flags & NLM_F_CREATE) != 0);
  CHECK(batch.messages[1].what == "deletion of elements of set block");
  CHECK(batch.messages[2].what == "elements of set block");
  CHECK(batch.rule_seqs.empty());

  const auto removed = element_list_of(messages[1].nlh);
  CHECK(removed.table == "portier");
  CHECK(removed.set == "block");
  CHECK_FALSE(removed.has_set_id);  // the set exists: by name only
  // a/32 is the start a and the end a+1; no timeout on a removal.
  CHECK(removed.elements ==
        std::vector<EditedElement>{element({192, 168, 1, 7}), element({192, 168, 1, 8}, true)});
  const auto added = element_list_of(messages[2].nlh);
  CHECK_FALSE(added.has_set_id);
  // No leading end element at zero; the timeout on each start; none after a range that
  // runs to the top of the address space.
  CHECK(added.elements == std::vector<EditedElement>{
                              element({10, 0, 0, 1}, false, 90000), element({10, 0, 0, 2}, true),
                              element({10, 1, 0, 0}, false, 90000), element({10, 2, 0, 0}, true),
                              element({224, 0, 0, 0}, false, 90000)});
}

TEST_CASE("encode_set_edit_batch: hash sets get plain keys: long lists are split") {
  std::vector<AddressRange> add;
  for (std::uint32_t i = 0; i < 6000; ++i) {
    const std::string text = "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".1";
    add.push_back(span(text, text));
  }
  const portier::SetElementChange change{"plain", SetKey::ipv4_addr, false, add, {}, std::nullopt};
  const auto batch = portier::encode_set_edit_batch("portier", change, 1);
  const auto messages = split(batch);
  REQUIRE(messages.size() > 3);  // 6000 elements do not fit one 64 KiB attribute
  std::size_t total = 0;
  for (std::size_t i = 1; i + 1 < messages.size(); ++i) {
    CHECK(messages[i].type == nft(NFT_MSG_NEWSETELEM));
    CHECK(messages[i].seq == messages[1].seq);
    const auto list = element_list_of(messages[i].nlh);
    for (const EditedElement& e : list.elements) {
      CHECK_FALSE(e.interval_end);
      CHECK_FALSE(e.timeout_ms);
    }
    total += list.elements.size();
  }
  CHECK(total == 6000);
  CHECK(element_list_of(messages[1].nlh).elements.front() == element({10, 0, 0, 1}));

  const std::vector<AddressRange> ports = {{port_element(22), port_element(22)}};
  const portier::SetElementChange service{"ports", SetKey::inet_service, false, {},
                                          ports,   std::nullopt};
  const auto removal_batch = portier::encode_set_edit_batch("portier", service, 1);
  const auto removal = split(removal_batch);
  REQUIRE(removal.size() == 3);
  CHECK(removal[1].type == nft(NFT_MSG_DELSETELEM));
  CHECK(element_list_of(removal[1].nlh).elements == std::vector<EditedElement>{element({0, 22})});
}

TEST_CASE("encode_set_edit_batch: refuses elements the set cannot hold") {
  const std::vector<AddressRange> range = {span("10.0.0.0", "10.0.0.255")};
  const std::vector<AddressRange> v6 = {span("fd00::1", "fd00::1")};
  const std::vector<AddressRange> one = {span("10.0.0.1", "10.0.0.1")};
  CHECK_THROWS_WITH_AS(
      portier::encode_set_edit_batch(
          "portier", {"plain", SetKey::ipv4_addr, false, range, {}, std::nullopt}, 1),
      "set plain holds ranges but is not an interval set", std::invalid_argument);
  CHECK_THROWS_WITH_AS(portier::encode_set_edit_batch(
                           "portier", {"block", SetKey::ipv4_addr, true, {}, v6, std::nullopt}, 1),
                       "set block holds an address of the other family", std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      portier::encode_set_edit_batch("portier", {"block", SetKey::ipv4_addr, true, one, {}, 0}, 1),
      "set block: timeout must be at least 1 second", std::invalid_argument);
}

namespace {

// One element of a RuleMap as sent: key and key end as hex, the interval end flag, the
// verdict code (-1: no data) and the userdata.
struct SentMapElement {
  std::string key;
  std::string key_end;
  bool interval_end = false;
  std::int64_t verdict = -1;
  std::vector<std::uint8_t> udata;
  friend bool operator==(const SentMapElement&, const SentMapElement&) = default;
};

std::string hex(const nlattr* value) {
  static const char* kHex = "0123456789abcdef";
  std::string text;
  const auto* bytes = static_cast<const std::uint8_t*>(mnl_attr_get_payload(value));
  for (std::uint16_t i = 0; i < mnl_attr_get_payload_len(value); ++i) {
    text += kHex[bytes[i] >> 4];
    text += kHex[bytes[i] & 15];
  }
  return text;
}

std::vector<SentMapElement> map_elements_of(const nlmsghdr* nlh) {
  std::vector<SentMapElement> elements;
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS) return MNL_CB_OK;
        auto* out = static_cast<std::vector<SentMapElement>*>(data);
        for (const nlattr* element : nested(attr)) {
          SentMapElement sent;
          for (const nlattr* field : nested(element)) {
            switch (mnl_attr_get_type(field)) {
              case NFTA_SET_ELEM_KEY:
                sent.key = hex(nested(field).at(0));
                break;
              case NFTA_SET_ELEM_KEY_END:
                sent.key_end = hex(nested(field).at(0));
                break;
              case NFTA_SET_ELEM_FLAGS:
                sent.interval_end =
                    (ntohl(mnl_attr_get_u32(field)) & NFT_SET_ELEM_INTERVAL_END) != 0;
                break;
              case NFTA_SET_ELEM_DATA:
                for (const nlattr* part : nested(nested(field).at(0))) {
                  if (mnl_attr_get_type(part) == NFTA_VERDICT_CODE)
                    sent.verdict = static_cast<std::int32_t>(ntohl(mnl_attr_get_u32(part)));
                }
                break;
              case NFTA_SET_ELEM_USERDATA:
                sent.udata = bytes_of(mnl_attr_get_payload(field),
                                      static_cast<std::uint32_t>(mnl_attr_get_payload_len(field)));
                break;
            }
          }
          out->push_back(sent);
        }
        return MNL_CB_OK;
      },
      &elements);
  return elements;
}

// {NFTNL_UDATA_SET_ELEM_COMMENT, length with the NUL, text, NUL}
std::vector<std::uint8_t> comment_udata(const std::string& text) {
  std::vector<std::uint8_t> udata(text.size() + 3, 0);
  udata[1] = static_cast<std::uint8_t>(text.size() + 1);
  for (std::size_t i = 0; i < text.size(); ++i) udata[i + 2] = static_cast<std::uint8_t>(text[i]);
  return udata;
}

AddressRange ports(std::uint16_t first, std::uint16_t last) {
  return {port_element(first), port_element(last)};
}

Verdict lookup_of(std::string map, std::vector<KeyField> key) {
  Verdict verdict;
  verdict.kind = VerdictKind::map_lookup;
  verdict.map = std::move(map);
  verdict.map_key = std::move(key);
  return verdict;
}

// The maps of the brief's example, after a named set: m1 is `ip saddr . tcp dport`, m2
// `ip6 daddr . th sport`, m3 a single `th dport` field.
Ruleset merged_ruleset() {
  Ruleset ruleset;
  ruleset.sets.push_back(NamedSet{"block",
                                  SetKey::ipv4_addr,
                                  true,
                                  false,
                                  false,
                                  std::nullopt,
                                  std::nullopt,
                                  {span("192.0.2.0", "192.0.2.255")}});
  ruleset.maps.push_back(
      RuleMap{"input/m1",
              {KeyField::ip_saddr, KeyField::dport},
              {{{span("10.0.0.1", "10.0.0.1"), ports(22, 22)}, VerdictKind::accept, "r1"},
               {{span("10.1.0.0", "10.1.0.255"), ports(80, 90)}, VerdictKind::drop, "r2"}}});
  ruleset.maps.push_back(
      RuleMap{"input/m2",
              {KeyField::ip6_daddr, KeyField::sport},
              {{{span("fd00::1", "fd00::1"), ports(1024, 65535)}, VerdictKind::accept, "a"}}});
  ruleset.maps.push_back(RuleMap{"input/m3",
                                 {KeyField::dport},
                                 {{{ports(80, 90)}, VerdictKind::drop, "web"},
                                  {{ports(60000, 65535)}, VerdictKind::accept, "hi"},
                                  {{ports(22, 22)}, VerdictKind::accept, "ssh"}}});
  Rule m1 = make_rule({L4ProtoIn{{L4Proto::tcp}}}, VerdictKind::map_lookup, "merged r1 to r2");
  m1.verdict = lookup_of("input/m1", {KeyField::ip_saddr, KeyField::dport});
  Rule m2 = make_rule({L4ProtoIn{{L4Proto::tcp, L4Proto::udp}}}, VerdictKind::map_lookup);
  m2.verdict = lookup_of("input/m2", {KeyField::ip6_daddr, KeyField::sport});
  Rule m3 = make_rule({L4ProtoIn{{L4Proto::tcp, L4Proto::udp}}}, VerdictKind::map_lookup);
  m3.verdict = lookup_of("input/m3", {KeyField::dport});
  ruleset.chains.push_back(Chain{"input", BaseChain{}, {m1, m2, m3}});
  return ruleset;
}

// Each expression of a rule with the registers and offsets that tell a lookup apart.
std::vector<std::string> expression_details(const nlmsghdr* nlh) {
  const auto rule = parse_rule(nlh);
  std::vector<std::string> details;
  nftnl_expr_foreach(
      rule.get(),
      [](nftnl_expr* e, void* out) {
        const std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
        std::string text = name;
        auto u32 = [e](std::uint16_t attr) { return std::to_string(nftnl_expr_get_u32(e, attr)); };
        if (name == "payload") {
          text += " base " + u32(NFTNL_EXPR_PAYLOAD_BASE) + " +" + u32(NFTNL_EXPR_PAYLOAD_OFFSET) +
                  " " + u32(NFTNL_EXPR_PAYLOAD_LEN) + "b => reg " + u32(NFTNL_EXPR_PAYLOAD_DREG);
        } else if (name == "meta") {
          text += " key " + u32(NFTNL_EXPR_META_KEY);
        } else if (name == "lookup") {
          text += " reg " + u32(NFTNL_EXPR_LOOKUP_SREG) + " set " +
                  nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET) + " id " +
                  u32(NFTNL_EXPR_LOOKUP_SET_ID);
          if (nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG))
            text += " dreg " + u32(NFTNL_EXPR_LOOKUP_DREG);
        }
        static_cast<std::vector<std::string>*>(out)->push_back(text);
        return 0;
      },
      &details);
  return details;
}

}  // namespace

TEST_CASE("encode_replace_batch: RuleMaps after the named sets, as nft declares them") {
  const auto batch = portier::encode_replace_batch(merged_ruleset(), 1);
  const auto messages = split(batch);
  // begin, 3 table, chain, set + elements, 3 maps + elements, rule, 2 x (set, elements, rule), end
  const auto sets = of_type(messages, NFT_MSG_NEWSET);
  REQUIRE(sets.size() == 6);
  REQUIRE(messages.size() == 21);
  CHECK(messages[7].type == nft(NFT_MSG_NEWSET));
  CHECK(batch.messages[7].what == "map input/m1");
  CHECK(batch.messages[8].what == "elements of map input/m1");

  const auto m1 = parse_set(sets[1].nlh);
  CHECK(std::string(nftnl_set_get_str(m1.get(), NFTNL_SET_NAME)) == "input/m1");
  CHECK(nftnl_set_get_u32(m1.get(), NFTNL_SET_ID) == 2);  // after the set `block`
  CHECK(nftnl_set_get_u32(m1.get(), NFTNL_SET_FLAGS) ==
        (NFT_SET_INTERVAL | NFT_SET_MAP | NFT_SET_CONCAT));
  CHECK(nftnl_set_get_u32(m1.get(), NFTNL_SET_KEY_TYPE) == (7u << 6 | 13u));
  CHECK(nftnl_set_get_u32(m1.get(), NFTNL_SET_KEY_LEN) == 8);  // the port padded to 4 bytes
  CHECK(nftnl_set_get_u32(m1.get(), NFTNL_SET_DATA_TYPE) == NFT_DATA_VERDICT);
  CHECK(nftnl_set_get_u32(m1.get(), NFTNL_SET_DATA_LEN) == 0);
  CHECK_FALSE(nftnl_set_is_set(m1.get(), NFTNL_SET_DESC_SIZE));
  std::uint32_t len = 0;
  const void* concat = nftnl_set_get_data(m1.get(), NFTNL_SET_DESC_CONCAT, &len);
  REQUIRE(concat != nullptr);
  CHECK(static_cast<const std::uint8_t*>(concat)[0] == 4);
  CHECK(static_cast<const std::uint8_t*>(concat)[1] == 2);
  // Key and data byte order 0, typeof an empty concat expression, data not intervals.
  const void* udata = nftnl_set_get_data(m1.get(), NFTNL_SET_USERDATA, &len);
  CHECK(bytes_of(udata, len) == std::vector<std::uint8_t>{0, 4, 0, 0, 0, 0, 1,  4, 0, 0,
                                                          0, 0, 3, 8, 0, 4, 13, 0, 0, 0,
                                                          1, 0, 6, 4, 0, 0, 0,  0});
  // The set's counter expression: NFTA_SET_EXPR { name "counter", data {} }.
  std::string expression;
  mnl_attr_parse(
      sets[1].nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) != NFTA_SET_EXPR) return MNL_CB_OK;
        for (const nlattr* part : nested(attr)) {
          if (mnl_attr_get_type(part) == NFTA_EXPR_NAME)
            *static_cast<std::string*>(data) = mnl_attr_get_str(part);
        }
        return MNL_CB_OK;
      },
      &expression);
  CHECK(expression == "counter");

  // pipapo elements in the map's order: key and key end, the verdict, the comment.
  CHECK(map_elements_of(messages[8].nlh) ==
        std::vector<SentMapElement>{
            {"0a00000100160000", "0a00000100160000", false, NF_ACCEPT, comment_udata("r1")},
            {"0a01000000500000", "0a0100ff005a0000", false, NF_DROP, comment_udata("r2")}});
  CHECK(map_elements_of(messages[10].nlh) ==
        std::vector<SentMapElement>{{"fd000000000000000000000000000001"
                                     "04000000",
                                     "fd000000000000000000000000000001"
                                     "ffff0000",
                                     false, NF_ACCEPT, comment_udata("a")}});

  // One field: an rbtree map, sorted, its ranges as boundaries (the open end marked after
  // the comment), no concatenation.
  const auto m3 = parse_set(sets[3].nlh);
  CHECK(nftnl_set_get_u32(m3.get(), NFTNL_SET_ID) == 4);
  CHECK(nftnl_set_get_u32(m3.get(), NFTNL_SET_FLAGS) == (NFT_SET_INTERVAL | NFT_SET_MAP));
  CHECK(nftnl_set_get_u32(m3.get(), NFTNL_SET_KEY_TYPE) == 13);
  CHECK(nftnl_set_get_u32(m3.get(), NFTNL_SET_KEY_LEN) == 2);
  CHECK_FALSE(nftnl_set_is_set(m3.get(), NFTNL_SET_DESC_CONCAT));
  udata = nftnl_set_get_data(m3.get(), NFTNL_SET_USERDATA, &len);
  CHECK(bytes_of(udata, len) ==
        std::vector<std::uint8_t>{0, 4, 2, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0});
  std::vector<std::uint8_t> open = comment_udata("hi");
  open.insert(open.end(), {1, 4, 1, 0, 0, 0});
  CHECK(map_elements_of(messages[12].nlh) ==
        std::vector<SentMapElement>{{"0000", "", true, -1, {}},
                                    {"0016", "", false, NF_ACCEPT, comment_udata("ssh")},
                                    {"0017", "", true, -1, {}},
                                    {"0050", "", false, NF_DROP, comment_udata("web")},
                                    {"005b", "", true, -1, {}},
                                    {"ea60", "", false, NF_ACCEPT, open}});

  // The rules: dependencies first, then the key fields in consecutive 32-bit registers
  // (named by their 128-bit number where one starts), then the lookup into the verdict.
  CHECK(expression_details(messages[13].nlh) ==
        Names{"meta key " + std::to_string(NFT_META_L4PROTO), "cmp",
              "meta key " + std::to_string(NFT_META_NFPROTO), "cmp",
              "payload base 1 +12 4b => reg 1", "payload base 2 +2 2b => reg 9",
              "lookup reg 1 set input/m1 id 2 dreg 0"});
  CHECK(batch.messages[13].what == "rule \"merged r1 to r2\" in chain input");
  // The anonymous protocol sets count on after the maps.
  CHECK(nftnl_set_get_u32(parse_set(messages[14].nlh).get(), NFTNL_SET_ID) == 5);
  CHECK(expression_details(messages[16].nlh) ==
        Names{"meta key " + std::to_string(NFT_META_L4PROTO), "lookup reg 1 set __set%d id 5",
              "meta key " + std::to_string(NFT_META_NFPROTO), "cmp",
              "payload base 1 +24 16b => reg 1", "payload base 2 +0 2b => reg 2",
              "lookup reg 1 set input/m2 id 3 dreg 0"});
  CHECK(expression_details(messages[19].nlh) ==
        Names{"meta key " + std::to_string(NFT_META_L4PROTO), "lookup reg 1 set __set%d id 6",
              "payload base 2 +2 2b => reg 1", "lookup reg 1 set input/m3 id 4 dreg 0"});
}

TEST_CASE("encode_replace_batch: port before address, and two addresses, in registers") {
  Ruleset ruleset;
  ruleset.maps.push_back(RuleMap{"m", {KeyField::sport, KeyField::ip6_saddr, KeyField::dport}, {}});
  ruleset.maps.push_back(RuleMap{"n", {KeyField::ip_saddr, KeyField::ip_daddr}, {}});
  Rule m = make_rule({L4ProtoIn{{L4Proto::udp}}}, VerdictKind::map_lookup);
  m.verdict = lookup_of("m", ruleset.maps[0].key);
  Rule n = make_rule({NfProto{Family::ipv4}}, VerdictKind::map_lookup);
  n.verdict = lookup_of("n", ruleset.maps[1].key);
  ruleset.chains.push_back(Chain{"input", BaseChain{}, {m, n}});
  const auto batch = portier::encode_replace_batch(ruleset, 1);
  const auto messages = split(batch);
  const auto rules = of_type(messages, NFT_MSG_NEWRULE);
  REQUIRE(rules.size() == 2);
  CHECK(nftnl_set_get_u32(parse_set(of_type(messages, NFT_MSG_NEWSET)[0].nlh).get(),
                          NFTNL_SET_KEY_TYPE) == ((13u << 6 | 8u) << 6 | 13u));
  CHECK(expression_details(rules[0].nlh) ==
        Names{"meta key " + std::to_string(NFT_META_L4PROTO), "cmp",
              "meta key " + std::to_string(NFT_META_NFPROTO), "cmp",
              "payload base 2 +0 2b => reg 1", "payload base 1 +8 16b => reg 9",
              "payload base 2 +2 2b => reg 13", "lookup reg 1 set m id 1 dreg 0"});
  // `meta nfproto ipv4` already stands in the rule: no second dependency.
  CHECK(expression_details(rules[1].nlh) == Names{"meta key " + std::to_string(NFT_META_NFPROTO),
                                                  "cmp", "payload base 1 +12 4b => reg 1",
                                                  "payload base 1 +16 4b => reg 9",
                                                  "lookup reg 1 set n id 2 dreg 0"});
}

TEST_CASE(
    "encode_edit_batch of map elements: removals by key, then additions with verdict and comment") {
  const std::vector<MapElement> add = {
      {{span("10.0.0.1", "10.0.0.1"), ports(22, 22)}, VerdictKind::accept, "r1"}};
  const std::vector<MapElement> remove = {
      {{span("10.1.0.0", "10.1.0.255"), ports(80, 90)}, VerdictKind::drop, "r2"}};
  const portier::MapElementChange change{
      "input/m1", {KeyField::ip_saddr, KeyField::dport}, add, remove};
  const auto batch = portier::encode_edit_batch(
      {.table = "portier", .map_changes = {&change, 1}, .first_seq = 10});
  const auto messages = split(batch);
  REQUIRE(messages.size() == 4);
  CHECK(messages[1].type == nft(NFT_MSG_DELSETELEM));
  CHECK(messages[2].type == nft(NFT_MSG_NEWSETELEM));
  CHECK((messages[2].flags & NLM_F_CREATE) != 0);
  CHECK(batch.messages[1].what == "deletion of elements of map input/m1");
  CHECK(batch.messages[2].what == "elements of map input/m1");
  const auto removed = element_list_of(messages[1].nlh);
  CHECK(removed.set == "input/m1");
  CHECK_FALSE(removed.has_set_id);
  CHECK(map_elements_of(messages[1].nlh) ==
        std::vector<SentMapElement>{{"0a01000000500000", "0a0100ff005a0000", false, -1, {}}});
  CHECK_FALSE(element_list_of(messages[2].nlh).has_set_id);
  CHECK(map_elements_of(messages[2].nlh) ==
        std::vector<SentMapElement>{
            {"0a00000100160000", "0a00000100160000", false, NF_ACCEPT, comment_udata("r1")}});

  // One field: boundaries without the leading end element at zero.
  const std::vector<MapElement> web = {{{ports(80, 90)}, VerdictKind::drop, "web"}};
  // The batch must outlive the messages split() points into.
  const portier::MapElementChange web_change{"input/m3", {KeyField::dport}, web, web};
  const auto single_batch = portier::encode_edit_batch(
      {.table = "portier", .map_changes = {&web_change, 1}, .first_seq = 1});
  const auto single = split(single_batch);
  REQUIRE(single.size() == 4);
  CHECK(map_elements_of(single[1].nlh) ==
        std::vector<SentMapElement>{{"0050", "", false, -1, {}}, {"005b", "", true, -1, {}}});
  CHECK(map_elements_of(single[2].nlh) ==
        std::vector<SentMapElement>{{"0050", "", false, NF_DROP, comment_udata("web")},
                                    {"005b", "", true, -1, {}}});
  const portier::MapElementChange nothing{"input/m3", {KeyField::dport}, {}, {}};
  CHECK(split(portier::encode_edit_batch(
                  {.table = "portier", .map_changes = {&nothing, 1}, .first_seq = 1}))
            .size() == 2);
}

TEST_CASE("RuleMaps: refuses what the kernel could not hold") {
  auto with_map = [](RuleMap map) {
    Ruleset ruleset = merged_ruleset();
    ruleset.maps.push_back(std::move(map));
    return ruleset;
  };
  CHECK_THROWS_WITH_AS(portier::encode_replace_batch(with_map({"block", {KeyField::dport}, {}}), 1),
                       "two sets or maps named 'block'", std::invalid_argument);
  CHECK_THROWS_WITH_AS(portier::encode_replace_batch(
                           with_map({"x", {KeyField::ip_saddr, KeyField::ip6_daddr}, {}}), 1),
                       "map x has a key of both IPv4 and IPv6 addresses", std::invalid_argument);
  CHECK_THROWS_WITH_AS(portier::encode_replace_batch(with_map({"x", {}, {}}), 1),
                       "map x has no key", std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      portier::encode_replace_batch(
          with_map({"x", {KeyField::dport}, {{{ports(1, 1)}, VerdictKind::jump, "j"}}}), 1),
      "an element of map x must accept or drop", std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      portier::encode_replace_batch(
          with_map(
              {"x", {KeyField::ip_saddr}, {{{span("fd00::1", "fd00::1")}, VerdictKind::drop, ""}}}),
          1),
      "map x: ip saddr holds an address of the other family", std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      portier::encode_replace_batch(
          with_map({"x", {KeyField::dport}, {{{ports(9, 8)}, VerdictKind::drop, ""}}}), 1),
      "map x: dport holds a reversed range", std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      portier::encode_replace_batch(
          with_map(
              {"x", {KeyField::dport, KeyField::sport}, {{{ports(1, 1)}, VerdictKind::drop, ""}}}),
          1),
      "an element of map x does not have 2 key fields", std::invalid_argument);

  Ruleset missing = merged_ruleset();
  missing.chains[0].rules[0].verdict.map = "input/none";
  CHECK_THROWS_WITH_AS(portier::encode_replace_batch(missing, 1),
                       "no map named 'input/none' in the table", std::invalid_argument);
  Ruleset other_key = merged_ruleset();
  other_key.chains[0].rules[0].verdict.map_key = {KeyField::ip_daddr, KeyField::dport};
  CHECK_THROWS_WITH_AS(portier::encode_replace_batch(other_key, 1),
                       "the lookup of map input/m1 does not load the map's key fields",
                       std::invalid_argument);
  // An edit inserting a lookup needs the map's declaration.
  const Rule lookup = merged_ruleset().chains[0].rules[0];
  const std::vector<portier::RuleInsertion> insertion = {{"input", 0, &lookup}};
  CHECK_THROWS_WITH_AS(
      portier::encode_edit_batch({.table = "portier", .insertions = insertion, .first_seq = 1}),
      "no map named 'input/m1' in the table", std::invalid_argument);
  const Ruleset loaded = merged_ruleset();
  const Rule copy = loaded.chains[0].rules[0];
  const std::vector<portier::RuleInsertion> insert_copy = {{"input", 0, &copy}};
  CHECK(of_type(split(portier::encode_edit_batch({.table = "portier",
                                                  .sets = loaded.sets,
                                                  .maps = loaded.maps,
                                                  .insertions = insert_copy,
                                                  .first_seq = 1})),
                NFT_MSG_NEWRULE)
            .size() == 1);
}
