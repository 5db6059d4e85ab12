// LoadedTable: the record of what the kernel holds, and the edits it gives, without a
// kernel. (firewall_test.cpp drives it through Firewall against a fake kernel, for any
// sequence of toggles and set changes.)
#include "loaded_table.h"

#include <doctest/doctest.h>

#include "compile_policy.h"
#include "parse_policy.h"

using namespace portier;

namespace {

// No neighbour stacks: their copies of input rules for published ports would be more
// kernel rules per policy rule.
constexpr std::string_view kThreeRules =
    "[neighbours]\ndocker=false\npodman=false\nlibvirt=false\nkubernetes=false\n"
    "[set.block]\nfamily='ipv4'\nelements=['10.0.0.0/8']\ntimeout='1h'\n"
    "[[rule]]\nname='a'\nprotocols='tcp'\nports=[22]\naction='accept'\n"
    "[[rule]]\nname='b'\nprotocols='tcp'\nports=[80]\naction='accept'\nenabled=false\n"
    "[[rule]]\nname='c'\nfrom='@block'\nprotocols='udp'\nports=[53]\naction='drop'\n";

Policy parsed(std::string_view text) {
  ParsedPolicy result = parse_policy(text, "policy.toml", SystemTables{});
  REQUIRE_MESSAGE(result.ok(), result.report());
  return result.policy;
}

// Compiled with every rule enabled, as Firewall loads it.
ir::Ruleset compiled_full(Policy policy) {
  for (Rule& rule : policy.rules) rule.enabled = true;
  return compile_policy(policy);
}

// Handles as a kernel gives them: 1, 2, 3, ... over the chains in order.
RuleHandles numbered(const ir::Ruleset& loaded) {
  RuleHandles handles;
  std::uint64_t next = 0;
  for (const ir::Chain& chain : loaded.chains) {
    handles.emplace_back();
    for (std::size_t r = 0; r < chain.rules.size(); ++r) handles.back().push_back(++next);
  }
  return handles;
}

// The handle of the rule of `owner` in the chain `chain` of what was loaded; with
// `before`, of the loaded rule just before where `owner`'s rule is in `full`.
std::uint64_t handle_in(const ir::Ruleset& loaded, const RuleHandles& handles,
                        const std::string& chain, std::string_view owner) {
  for (std::size_t c = 0; c < loaded.chains.size(); ++c)
    if (loaded.chains[c].name == chain)
      for (std::size_t r = 0; r < loaded.chains[c].rules.size(); ++r)
        if (rule_owner(loaded.chains[c].rules[r]) == owner) return handles[c][r];
  FAIL("no rule of " << owner << " in chain " << chain);
  return 0;
}

}  // namespace

TEST_CASE(
    "a toggle is the edit of one rule's kernel rules, by handle, and the record changes once "
    "made") {
  const Policy policy = parsed(kThreeRules);
  const ir::Ruleset full = compiled_full(policy);
  const ir::Ruleset loaded = without_owners(full, {"b"});
  REQUIRE(loaded == compile_policy(policy));
  const RuleHandles handles = numbered(loaded);
  LoadedTable table;
  CHECK_FALSE(table.loaded());
  table.load(full, {"b"}, handles);
  CHECK(table.loaded());
  CHECK(table.holds(full));
  CHECK(table.table() == "portier");
  CHECK(table.ruleset() == loaded);

  // Off: a's rule goes by its handle, nothing comes in.
  LoadedTable::Change off = table.toggle("a", false);
  REQUIRE(off.edit.removes.size() == 1);
  CHECK(off.edit.removes[0].chain == "input");
  CHECK(off.edit.removes[0].handle == handle_in(loaded, handles, "input", "a"));
  CHECK(off.edit.inserts.empty());
  CHECK(off.edit.maps.empty());
  CHECK(table.ruleset() == loaded);  // not made yet (the kernel may refuse it)
  table.made(off, {});
  CHECK(table.disabled() == RuleNames{"a", "b"});
  CHECK(table.ruleset() == without_owners(full, {"a", "b"}));

  // On: b's rule goes in after the nearest loaded rule before it (a is out: the one before a).
  LoadedTable::Change on = table.toggle("b", true);
  REQUIRE(on.edit.inserts.size() == 1);
  CHECK(on.edit.removes.empty());
  CHECK(on.edit.inserts[0].chain == "input");
  CHECK(rule_owner(on.edit.inserts[0].rule) == "b");
  const ir::Chain& input = loaded.chains[0];
  REQUIRE(input.name == "input");
  std::uint64_t before_a = 0;
  for (std::size_t r = 0; r < input.rules.size() && rule_owner(input.rules[r]) != "a"; ++r)
    before_a = handles[0][r];
  CHECK(on.edit.inserts[0].after_handle == before_a);
  table.made(on, {1000});
  CHECK(table.disabled() == RuleNames{"a"});
  // The next insert after b finds b by the handle the kernel gave it.
  LoadedTable::Change a_on = table.toggle("a", true);
  REQUIRE(a_on.edit.inserts.size() == 1);
  CHECK(a_on.edit.inserts[0].after_handle == before_a);  // a comes before b
  LoadedTable::Change b_off = table.toggle("b", false);
  REQUIRE(b_off.edit.removes.size() == 1);
  CHECK(b_off.edit.removes[0].handle == 1000);
  // Turning on what is on sends nothing.
  CHECK(table.toggle("c", true).sends_nothing());
}

TEST_CASE(
    "leave_out gives the edit to any set of left-out rules, and a full() that differs is not "
    "held") {
  const Policy policy = parsed(kThreeRules);
  const ir::Ruleset full = compiled_full(policy);
  LoadedTable table;
  table.load(full, {"b"}, numbered(without_owners(full, {"b"})));
  LoadedTable::Change change = table.leave_out({"a", "c"});
  std::size_t rules_of_a_and_c = 0;  // c is two: one for each kernel set of @block
  for (const ir::Chain& chain : full.chains)
    for (const ir::Rule& rule : chain.rules)
      rules_of_a_and_c += rule_owner(rule) == "a" || rule_owner(rule) == "c" ? 1 : 0;
  CHECK(rules_of_a_and_c == 3);
  CHECK(change.edit.removes.size() == rules_of_a_and_c);
  REQUIRE(change.edit.inserts.size() == 1);
  CHECK(rule_owner(change.edit.inserts[0].rule) == "b");
  table.made(std::move(change), {77});
  CHECK(table.disabled() == RuleNames{"a", "c"});
  CHECK(table.ruleset() == without_owners(full, {"a", "c"}));

  ir::Ruleset other = full;
  other.chains[0].rules.pop_back();
  CHECK_FALSE(table.holds(other));
  table.forget();
  CHECK_FALSE(table.holds(full));
}

TEST_CASE(
    "set edits go to the hash or the interval set, and removed elements are marked, then taken "
    "out") {
  const Policy policy = parsed(kThreeRules);
  const NamedSet& block = *policy.find_set("block");
  const ir::Ruleset full = compiled_full(policy);
  LoadedTable table;
  table.load(full, {}, numbered(full));

  auto edits = table.set_edits(block, {"192.0.2.1", "198.51.100.0/24"}, {}, std::chrono::hours(1));
  REQUIRE(edits);
  REQUIRE(edits->size() == 2);  // in name order
  CHECK((*edits)[0].set == "block");
  CHECK((*edits)[0].interval);
  CHECK((*edits)[0].add == std::vector<ir::AddressRange>{element_range(block, "198.51.100.0/24")});
  CHECK((*edits)[1].set == "block_hosts");
  CHECK((*edits)[1].add == std::vector<ir::AddressRange>{element_range(block, "192.0.2.1")});
  CHECK((*edits)[1].timeout_seconds == 3600u);
  for (const SetEdit& edit : *edits) table.set_edited(edit);

  auto elements = [](const ir::Ruleset& ruleset, const std::string& name) {
    for (const ir::NamedSet& set : ruleset.sets)
      if (set.name == name) return set.elements;
    return std::vector<ir::AddressRange>{};
  };
  CHECK(elements(table.ruleset(), "block_hosts") ==
        std::vector<ir::AddressRange>{element_range(block, "192.0.2.1")});
  CHECK(elements(table.ruleset(), "block").size() == 2);

  auto removal = table.set_edits(block, {}, {"192.0.2.1"}, std::nullopt);
  REQUIRE(removal);
  REQUIRE(removal->size() == 1);
  CHECK_FALSE((*removal)[0].timeout_seconds);
  table.set_edited((*removal)[0]);
  CHECK(elements(table.ruleset(), "block_hosts").empty());
  CHECK(elements(table.full(), "block_hosts").size() == 1);  // only marked
  table.take_out_removed();
  CHECK(elements(table.full(), "block_hosts").empty());

  // A set the kernel does not have: nothing to edit in place.
  NamedSet other = block;
  other.name = "other";
  CHECK_FALSE(table.set_edits(other, {"192.0.2.2"}, {}, std::nullopt));
}
