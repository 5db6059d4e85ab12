// The daemon core against a fake kernel and a fake clock: what it loads, when, what it
// keeps on failure, and what survives a restart.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "compile_policy.h"
#include "fake_cgroup_tree.h"
#include "fake_kernel_changes.h"
#include "fake_state_store.h"
#include "firewall.h"
#include "packet_verdicts.h"

using namespace portier;
namespace fs = std::filesystem;

namespace {

// Keeps what a kernel would hold, with rule handles, so edits can be checked by their
// outcome as well as by what was sent.
class FakeKernel final : public Kernel {
 public:
  RuleHandles apply(const ir::Ruleset& ruleset) override {
    if (refuse) throw refused_rule();
    if (refuse_owned && ruleset.owner) throw *refuse_owned;
    applied.push_back(ruleset);
    current = ruleset;
    handles.clear();
    for (const ir::Chain& chain : ruleset.chains) {
      handles.emplace_back();
      for (std::size_t i = 0; i < chain.rules.size(); ++i) handles.back().push_back(++next_handle);
    }
    return handles;
  }
  // As a real kernel ends up: the table replaced (its contents or whole). Records which
  // replacements were asked over a loaded table, and checks that `loaded` is what it holds.
  RuleHandles refill(const ir::Ruleset& loaded, const ir::Ruleset& next) override {
    if (refuse_refill) throw refused_rule();
    CHECK(loaded.table == current.table);
    CHECK(names_of(loaded.chains) == names_of(current.chains));
    CHECK(names_of(loaded.sets) == names_of(current.sets));
    CHECK(names_of(loaded.maps) == names_of(current.maps));
    RuleHandles result = apply(next);
    ++refills;
    return result;
  }
  std::vector<std::uint64_t> edit(const ir::Ruleset& loaded, const TableEdit& edit) override {
    if (refuse) throw refused_rule();
    // The real kernel's edit finds the sets and maps rules look up in `loaded`: they must
    // be those of the table loaded.
    CHECK(loaded.table == current.table);
    CHECK(names_of(loaded.sets) == names_of(current.sets));
    CHECK(names_of(loaded.maps) == names_of(current.maps));
    edits.push_back(edit);
    for (const TableEdit::Remove& remove : edit.removes) {
      std::size_t c = chain_index(remove.chain);
      auto it = std::find(handles[c].begin(), handles[c].end(), remove.handle);
      REQUIRE(it != handles[c].end());
      current.chains[c].rules.erase(current.chains[c].rules.begin() + (it - handles[c].begin()));
      handles[c].erase(it);
    }
    std::vector<std::uint64_t> inserted;
    for (std::size_t i = 0; i < edit.inserts.size(); ++i) {
      const TableEdit::Insert& insert = edit.inserts[i];
      std::size_t c = chain_index(insert.chain);
      std::size_t at = 0;
      // As the real encoder places them: after an earlier insert with the same anchor.
      std::uint64_t anchor = insert.after_handle;
      for (std::size_t j = i; j-- > 0;)
        if (edit.inserts[j].chain == insert.chain &&
            edit.inserts[j].after_handle == insert.after_handle) {
          anchor = inserted[j];
          break;
        }
      if (anchor != 0) {
        auto it = std::find(handles[c].begin(), handles[c].end(), anchor);
        REQUIRE(it != handles[c].end());
        at = static_cast<std::size_t>(it - handles[c].begin()) + 1;
      }
      current.chains[c].rules.insert(
          current.chains[c].rules.begin() + static_cast<std::ptrdiff_t>(at), insert.rule);
      handles[c].insert(handles[c].begin() + static_cast<std::ptrdiff_t>(at), ++next_handle);
      inserted.push_back(next_handle);
    }
    // As the kernel's concatenated maps do: an element put in goes last.
    for (const MapEdit& map_edit : edit.maps) {
      auto map = std::find_if(current.maps.begin(), current.maps.end(),
                              [&](const ir::RuleMap& m) { return m.name == map_edit.map; });
      REQUIRE(map != current.maps.end());
      CHECK(map->key == map_edit.key);
      for (const ir::MapElement& element : map_edit.remove) {
        auto it = std::find_if(map->elements.begin(), map->elements.end(),
                               [&](const ir::MapElement& e) { return e.key == element.key; });
        REQUIRE(it != map->elements.end());
        map->elements.erase(it);
      }
      for (const ir::MapElement& element : map_edit.add) {
        REQUIRE(std::none_of(map->elements.begin(), map->elements.end(),
                             [&](const ir::MapElement& e) { return e.key == element.key; }));
        map->elements.push_back(element);
      }
    }
    return inserted;
  }
  void edit_set(const std::string&, const SetEdit& edit) override {
    if (refuse || refuse_sets)
      throw KernelError("kernel refused elements of set \"x\": File exists", EEXIST,
                        KernelObject::elements, "elements of set \"x\"");
    set_edits.push_back(edit);
    for (ir::NamedSet& set : current.sets) {
      if (set.name != edit.set) continue;
      if (set.key == ir::SetKey::cgroupv2) {
        // The kernel knows ids only: paths stay empty here.
        for (const ir::AddressRange& range : edit.remove) {
          auto it = std::find_if(
              set.cgroups.begin(), set.cgroups.end(),
              [&](const ir::CgroupMember& m) { return ir::cgroup_element(m.id) == range; });
          REQUIRE(it != set.cgroups.end());
          set.cgroups.erase(it);
        }
        for (const ir::AddressRange& range : edit.add) {
          std::uint64_t id = 0;
          std::memcpy(&id, range.first.bytes.data(), sizeof id);
          set.cgroups.push_back({"", id});
        }
        continue;
      }
      for (const ir::AddressRange& range : edit.remove) std::erase(set.elements, range);
      set.elements.insert(set.elements.end(), edit.add.begin(), edit.add.end());
    }
  }
  std::vector<RuleCounter> read_counters(const std::string& table,
                                         const std::vector<std::string>& maps) override {
    CHECK(table == "portier");
    std::vector<std::string> loaded;
    for (const ir::RuleMap& map : current.maps) loaded.push_back(map.name);
    CHECK(maps == loaded);
    return counters;
  }
  const ir::Ruleset& last() const { return current; }

  std::vector<ir::Ruleset> applied;  // whole replacements
  std::size_t refills = 0;           // of them, asked as refill() of the loaded table
  std::vector<TableEdit> edits;
  std::vector<SetEdit> set_edits;
  std::vector<RuleCounter> counters;
  ir::Ruleset current;
  RuleHandles handles;
  std::uint64_t next_handle = 0;
  bool refuse = false;
  bool refuse_sets = false;
  bool refuse_refill = false;  // refill() throws, apply() works
  std::optional<KernelError> refuse_owned;  // thrown by apply() of an owned table

 private:
  static KernelError refused_rule() {
    return KernelError("kernel refused rule \"x\" in chain input: Invalid argument", EINVAL,
                       KernelObject::rule, "rule \"x\" in chain input");
  }
  template <typename Named>
  static std::vector<std::string> names_of(const std::vector<Named>& objects) {
    std::vector<std::string> names;
    for (const Named& object : objects) names.push_back(object.name);
    return names;
  }
  std::size_t chain_index(const std::string& name) const {
    for (std::size_t c = 0; c < current.chains.size(); ++c)
      if (current.chains[c].name == name) return c;
    FAIL("no chain " << name);
    return 0;
  }
};

// A policy file in a fresh temporary directory, removed afterwards, and the state
// directory in memory.
struct Files {
  Files() : dir(fs::temp_directory_path() / ("portier-core-" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Files() { fs::remove_all(dir); }
  void write(std::string_view text, const std::string& name = "policy.toml") const {
    std::ofstream(dir / name) << text;
  }
  std::string read(const std::string& name) const {
    std::ifstream file(dir / name);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }
  std::string path(const std::string& name = "policy.toml") const { return (dir / name).string(); }
  fs::path dir;
  portier::testing::FakeStateStore state;  // outlives the Daemons, like the disk
};

struct FakeClock {
  Clock::time_point now = Clock::time_point(std::chrono::seconds(1'800'000'000));
};

// A firewall over the files, as portierd would make it (one per "process").
struct Daemon {
  Daemon(FakeKernel& kernel, Files& files, FakeClock& clock, const CgroupTree* cgroups = nullptr,
         SystemTables tables = {})
      : firewall(kernel,
                 FirewallOptions{
                     files.path(), "", {}, cgroups, [&clock] { return clock.now; }, &files.state},
                 std::move(tables)) {}
  Firewall firewall;
};

constexpr std::string_view kTwoRules =
    "# my rules\n"
    "[[rule]]\nname='ssh'\nprotocols='tcp'\nports=[22]\naction='accept'\n"
    "[[rule]]\nname='web'   # the web\nprotocols='tcp'\nports=[80]\naction='accept'\nenabled=false "
    " # not yet\n";

// portierd started on kTwoRules, where many tests begin (TEST_CASE_FIXTURE).
struct StartedOnTwoRules {
  StartedOnTwoRules() {
    files.write(kTwoRules);
    daemon.firewall.start();
  }
  Files files;
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon{kernel, files, clock};
};

// The policy rules in the input, output and forward chains, in order (their copies for
// published container ports, and the neighbours' fixed rules, left out).
std::vector<std::string> rule_names(const ir::Ruleset& ruleset) {
  std::vector<std::string> names;
  for (const ir::Chain& chain : ruleset.chains)
    for (const ir::Rule& rule : chain.rules)
      if (!chain.name.starts_with("published") && !rule.comment.starts_with("left to ") &&
          rule.comment.find(" guests: ") == std::string::npos)
        if (!rule.comment.empty() && !rule.comment.starts_with("default"))
          names.push_back(rule.comment);
  return names;
}

}  // namespace

TEST_CASE("start loads the policy file and keeps a self-contained copy as last good") {
  Files files;
  files.write(kTwoRules);
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon(kernel, files, clock);
  CHECK(daemon.firewall.start().empty());
  REQUIRE(kernel.applied.size() == 1);
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh"});
  CHECK(daemon.firewall.status().loaded_from == "policy");
  CHECK(files.state.text(StateFile::last_good).find("name = 'ssh'") != std::string::npos);
}

TEST_CASE("a broken policy at start: the last good one, else the built-in fail-closed one") {
  Files files;
  FakeKernel kernel;
  FakeClock clock;
  files.write("[[rule]]\nname='x'\naction='dorp'\n");
  {
    Daemon daemon(kernel, files, clock);
    std::string problems = daemon.firewall.start();
    CHECK(problems.find("policy.toml:3:8: error: unknown action 'dorp'") != std::string::npos);
    CHECK(problems.find("built-in fail-closed") != std::string::npos);
    CHECK(daemon.firewall.status().loaded_from == "fail-closed");
    // Inbound closed: the input chain drops by default, only the fixed rules accept.
    const ir::Chain& input = *std::find_if(kernel.last().chains.begin(), kernel.last().chains.end(),
                                           [](const ir::Chain& c) { return c.name == "input"; });
    CHECK_FALSE(input.base->policy_accept);
  }
  files.write(kTwoRules);
  {
    Daemon daemon(kernel, files, clock);
    daemon.firewall.start();  // good: becomes last good
  }
  files.write("[[rule]]\nname='x'\naction='dorp'\n");
  Daemon daemon(kernel, files, clock);
  std::string problems = daemon.firewall.start();
  CHECK(problems.find("loaded the last good policy") != std::string::npos);
  CHECK(daemon.firewall.status().loaded_from == "last-good");
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh"});
}

TEST_CASE_FIXTURE(StartedOnTwoRules, "an invalid policy on reload changes nothing in the kernel") {
  files.write("[[rule]]\nname='ssh'\naction='alow'\n");
  CHECK_THROWS_WITH_AS(daemon.firewall.reload(),
                       doctest::Contains("policy.toml:3:8: error: unknown action 'alow' for "
                                         "'action': use accept, drop or reject"),
                       PolicyError);
  CHECK(kernel.applied.size() == 1);
  CHECK(daemon.firewall.generation() == 1);
  CHECK(daemon.firewall.rules().size() == 2);  // the old policy is still the one in force
}

TEST_CASE("runtime toggles apply at once, survive reload and restart, and roll back on refusal") {
  Files files;
  files.write(kTwoRules);
  FakeKernel kernel;
  FakeClock clock;
  {
    Daemon daemon(kernel, files, clock);
    daemon.firewall.start();
    daemon.firewall.set_rule_enabled("web", true, false);
    CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh", "web"});
    daemon.firewall.set_rule_enabled("ssh", false, false);
    CHECK(rule_names(kernel.last()) == std::vector<std::string>{"web"});
    // Both were small edits of the loaded table, not replacements: one insert, one removal,
    // each twice (input, and the copy in `published` for ports the neighbours publish).
    CHECK(kernel.applied.size() == 1);
    REQUIRE(kernel.edits.size() == 2);
    CHECK(kernel.edits[0].removes.empty());
    REQUIRE(kernel.edits[0].inserts.size() == 2);
    CHECK(kernel.edits[0].inserts[0].rule.comment == "web");
    CHECK(kernel.edits[0].inserts[1].rule.comment == "web");
    CHECK(kernel.edits[0].inserts[0].chain == "published");
    CHECK(kernel.edits[1].inserts.empty());
    CHECK(kernel.edits[1].removes.size() == 2);
    // What the kernel holds is what a whole load of the same state would hold.
    CHECK(kernel.last() == compile_policy([&] {
            ParsedPolicy parsed = parse_policy_file(files.path(), SystemTables{});
            parsed.policy.rules[0].enabled = false;
            parsed.policy.rules[1].enabled = true;
            return parsed.policy;
          }()));
    daemon.firewall.reload();
    CHECK(rule_names(kernel.last()) == std::vector<std::string>{"web"});
    CHECK(files.read("policy.toml") == kTwoRules);  // runtime only

    kernel.refuse = true;
    CHECK_THROWS_AS(daemon.firewall.set_rule_enabled("ssh", true, false), KernelError);
    kernel.refuse = false;
    CHECK_FALSE(daemon.firewall.rules()[0].enabled);  // the refused toggle did not stick
    CHECK_THROWS_WITH_AS(daemon.firewall.set_rule_enabled("nope", true, false),
                         "no rule or forward named 'nope' in the policy", NoSuchRule);
  }
  Daemon restarted(kernel, files, clock);
  restarted.firewall.start();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"web"});
}

TEST_CASE_FIXTURE(StartedOnTwoRules,
                  "--permanent edits the one enabled line, or adds one, keeping comments") {
  daemon.firewall.set_rule_enabled("web", true, true);
  daemon.firewall.set_rule_enabled("ssh", false, true);
  CHECK(files.read("policy.toml") ==
        "# my rules\n"
        "[[rule]]\nname='ssh'\nenabled = false\nprotocols='tcp'\nports=[22]\naction='accept'\n"
        "[[rule]]\nname='web'   # the "
        "web\nprotocols='tcp'\nports=[80]\naction='accept'\nenabled=true  # not yet\n");
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"web"});
}

TEST_CASE("apply with confirm: rolled back when the deadline passes, kept when confirmed") {
  Files files;
  files.write(kTwoRules);
  files.write("[[rule]]\nname='new'\nprotocols='udp'\naction='accept'\n", "new.toml");
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon(kernel, files, clock);
  daemon.firewall.start();

  daemon.firewall.apply_file(files.path("new.toml"), std::chrono::seconds(60));
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"new"});
  CHECK(daemon.firewall.mode() == Mode::pending_confirm);
  CHECK(daemon.firewall.next_deadline() == clock.now + std::chrono::seconds(60));
  clock.now += std::chrono::seconds(59);
  daemon.firewall.on_timer();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"new"});
  clock.now += std::chrono::seconds(1);
  daemon.firewall.on_timer();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh"});
  CHECK(daemon.firewall.mode() == Mode::normal);
  CHECK(files.read("policy.toml") == kTwoRules);
  CHECK_THROWS_AS(daemon.firewall.confirm(), NotPending);

  daemon.firewall.apply_file(files.path("new.toml"), std::chrono::seconds(60));
  daemon.firewall.confirm();
  clock.now += std::chrono::seconds(120);
  daemon.firewall.on_timer();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"new"});
  CHECK(files.read("policy.toml") == files.read("new.toml"));  // installed

  // With nothing pending, rollback goes to the good policy before this one.
  daemon.firewall.rollback();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh"});
}

TEST_CASE("timed rules expire, and keep their remaining time across a restart") {
  Files files;
  files.write("[zone.lan]\ninterfaces=['br0']\n");
  FakeKernel kernel;
  FakeClock clock;
  std::string name;
  {
    Daemon daemon(kernel, files, clock);
    daemon.firewall.start();
    TimedRuleRequest request;
    request.protocols = {"tcp"};
    request.ports = {"8080"};
    request.from = {"lan"};
    request.duration = std::chrono::minutes(30);
    name = daemon.firewall.add_timed_rule(request);
    CHECK(name == "timed-1");
    CHECK(rule_names(kernel.last()) == std::vector<std::string>{"timed-1"});
    request.from = {"lna"};
    CHECK_THROWS_WITH_AS(
        daemon.firewall.add_timed_rule(request),
        doctest::Contains("unknown zone 'lna' in rule 'timed-2' (did you mean 'lan'?)"),
        InvalidRequest);
  }
  clock.now += std::chrono::minutes(20);
  Daemon restarted(kernel, files, clock);
  restarted.firewall.start();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"timed-1"});
  CHECK(restarted.firewall.next_deadline() == clock.now + std::chrono::minutes(10));
  clock.now += std::chrono::minutes(10);
  restarted.firewall.on_timer();
  CHECK(rule_names(kernel.last()).empty());
  CHECK_FALSE(restarted.firewall.next_deadline());
}

TEST_CASE_FIXTURE(StartedOnTwoRules,
                  "disabling a timed rule ends it: it cannot be enabled or made permanent") {
  TimedRuleRequest request;
  request.protocols = {"tcp"};
  request.ports = {"8080"};
  request.duration = std::chrono::hours(1);
  const std::string name = daemon.firewall.add_timed_rule(request);
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh", name});
  CHECK_THROWS_WITH_AS(daemon.firewall.set_rule_enabled(name, true, false),
                       doctest::Contains("is on until it ends"), InvalidRequest);
  CHECK_THROWS_WITH_AS(daemon.firewall.set_rule_enabled(name, false, true),
                       doctest::Contains("is not in the policy file"), InvalidRequest);
  daemon.firewall.set_rule_enabled(name, false, false);
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh"});
  CHECK_FALSE(daemon.firewall.next_deadline());
  CHECK_THROWS_AS(daemon.firewall.set_rule_enabled(name, false, false), NoSuchRule);
}

TEST_CASE("panic mode drops everything but loopback, and survives a restart") {
  Files files;
  files.write(kTwoRules);
  FakeKernel kernel;
  FakeClock clock;
  {
    Daemon daemon(kernel, files, clock);
    daemon.firewall.start();
    daemon.firewall.set_panic(true, false);
    CHECK(daemon.firewall.mode() == Mode::panic);
    CHECK(kernel.last() == compile_panic(false));
  }
  Daemon restarted(kernel, files, clock);
  restarted.firewall.start();
  CHECK(kernel.last() == compile_panic(false));
  restarted.firewall.set_panic(false, false);
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh"});
}

TEST_CASE("set elements at run time: added, removed, listed, checked, kept across a restart") {
  Files files;
  files.write("[set.block]\nfamily='ipv4'\nelements=['10.0.0.0/8']\ntimeout='1h'\n");
  FakeKernel kernel;
  FakeClock clock;
  {
    Daemon daemon(kernel, files, clock);
    daemon.firewall.start();
    daemon.firewall.add_set_elements("block", {"203.0.113.9", "198.51.100.0/24"}, std::nullopt);
    CHECK(daemon.firewall.list_set_elements("block") ==
          std::vector<std::string>{"10.0.0.0/8", "203.0.113.9", "198.51.100.0/24"});
    // Straight into the kernel's sets, with the set's timeout, not a reload of the table:
    // the network into the interval set "block", the address into the hash set "block_hosts".
    CHECK(kernel.applied.size() == 1);
    REQUIRE(kernel.set_edits.size() == 2);
    CHECK(kernel.set_edits[0].set == "block");
    CHECK(kernel.set_edits[0].interval);
    CHECK(kernel.set_edits[0].add.size() == 1);
    CHECK(kernel.set_edits[1].set == "block_hosts");
    CHECK_FALSE(kernel.set_edits[1].interval);
    CHECK(kernel.set_edits[1].add.size() == 1);
    CHECK(kernel.set_edits[1].timeout_seconds == 3600u);
    CHECK(kernel.last().sets[0].elements.size() == 2);
    CHECK(kernel.last().sets[1].elements.size() == 1);
    // Refused by the kernel (say, an overlap): the set is loaded anew instead.
    kernel.refuse_sets = true;
    daemon.firewall.add_set_elements("block", {"172.16.0.0/16"}, std::nullopt);
    kernel.refuse_sets = false;
    CHECK(kernel.applied.size() == 2);
    daemon.firewall.remove_set_elements("block", {"10.0.0.0/8"});
    CHECK(daemon.firewall.list_set_elements("block") ==
          std::vector<std::string>{"203.0.113.9", "198.51.100.0/24", "172.16.0.0/16"});
    CHECK_THROWS_WITH_AS(daemon.firewall.add_set_elements("block", {"fd00::1"}, std::nullopt),
                         "'fd00::1' is not an element of set 'block' (ipv4)", InvalidRequest);
    CHECK_THROWS_AS(daemon.firewall.add_set_elements("nope", {"1.2.3.4"}, std::nullopt), NoSuchSet);
  }
  Daemon restarted(kernel, files, clock);
  restarted.firewall.start();
  CHECK(restarted.firewall.list_set_elements("block") ==
        std::vector<std::string>{"203.0.113.9", "198.51.100.0/24", "172.16.0.0/16"});
  // Their timeout (the set's hour) passes: the record of them goes too.
  clock.now += std::chrono::hours(1);
  restarted.firewall.on_timer();
  CHECK(restarted.firewall.list_set_elements("block").empty());
}

TEST_CASE("set elements added again are one element, and one removal takes out any element") {
  // As the soak adds and removes them: an element added twice is still one element (in
  // the listing, the runtime record and portierd's record of the kernel), and removing an
  // element the policy has after adding it again takes it out of the set, not only out of
  // the kernel.
  Files files;
  files.write("[set.block]\nfamily='ipv4'\nelements=['192.0.2.1', '10.0.0.0/8']\n");
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon(kernel, files, clock);
  daemon.firewall.start();
  for (int i = 0; i < 100; ++i)
    daemon.firewall.add_set_elements("block", {"203.0.113.9", "198.51.100.0/24"}, std::nullopt);
  CHECK(daemon.firewall.list_set_elements("block") ==
        std::vector<std::string>{"192.0.2.1", "10.0.0.0/8", "203.0.113.9", "198.51.100.0/24"});
  daemon.firewall.flush_state();
  daemon.firewall.wait_for_state();
  const std::string state = files.state.text(StateFile::runtime);
  auto count = [&](std::string_view what) {
    std::size_t n = 0;
    for (auto at = state.find(what); at != std::string::npos; at = state.find(what, at + 1)) ++n;
    return n;
  };
  CHECK(count("203.0.113.9") == 1);
  CHECK(count("198.51.100.0/24") == 1);
  std::size_t loaded = 0;
  for (const ir::NamedSet& set : daemon.firewall.loaded_ruleset().sets)
    loaded += set.elements.size();
  CHECK(loaded == 4);

  // The policy's own elements, added again at run time, then removed.
  daemon.firewall.add_set_elements("block", {"192.0.2.1", "10.0.0.0/8"}, std::nullopt);
  daemon.firewall.remove_set_elements("block", {"192.0.2.1", "10.0.0.0/8"});
  CHECK(daemon.firewall.list_set_elements("block") ==
        std::vector<std::string>{"203.0.113.9", "198.51.100.0/24"});
  daemon.firewall.reload();
  CHECK(daemon.firewall.list_set_elements("block") ==
        std::vector<std::string>{"203.0.113.9", "198.51.100.0/24"});
  std::size_t in_kernel = 0;
  for (const ir::NamedSet& set : kernel.last().sets) in_kernel += set.elements.size();
  CHECK(in_kernel == 2);
}

// Check is open to every caller and portierd runs as root: a set file named in the text
// would be read as root, its lines echoed back as "not a valid element" (the first lines of
// /etc/shadow, found by test_runtime_malformed_random's vocabulary), or /dev/zero read
// until memory runs out. A check over the bus reads no file.
TEST_CASE("check reads no set file, whoever sends the text") {
  Files files;
  files.write("[policy]\ninput = 'drop'\n");
  files.write("secret-line-1\nsecret-line-2\n", "secret.txt");
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon(kernel, files, clock);
  daemon.firewall.start();
  for (const std::string& name : {files.path("secret.txt"), std::string("secret.txt")}) {
    ParsedPolicy checked = daemon.firewall.check(
        "[set.s]\nfamily = 'ipv4'\nfile = '" + name + "'\n", files.path("check.toml"));
    CHECK_FALSE(checked.ok());
    CHECK(checked.report().find("secret-line") == std::string::npos);
    REQUIRE(checked.diagnostics.size() == 1);
    CHECK(format_headline(checked.diagnostics[0]) ==
          files.path("check.toml") +
              ":3:8: error: set files are not read in a check sent to portierd (it would read "
              "them as root for anyone); check the policy file itself: portierctl check FILE");
  }
  // A set file in a table of sets given inline is found too; other texts check as before.
  CHECK_FALSE(
      daemon.firewall.check("set = { s = { family = 'ipv4', file = '/dev/zero' } }\n", "c.toml")
          .ok());
  CHECK(
      daemon.firewall.check("[set.s]\nfamily = 'ipv4'\nelements = ['10.0.0.1']\n", "c.toml").ok());
  CHECK_FALSE(daemon.firewall.check("[set.s\n", "c.toml").ok());
}

TEST_CASE_FIXTURE(
    StartedOnTwoRules,
    "rules() joins the policy with the kernel's counters, adding up a rule's kernel rules") {
  kernel.counters = {{"input", "", 5, 500},
                     {"input", "ssh", 3, 180},
                     {"input_lan", "ssh", 1, 60},
                     {"input", "web", 9, 9}};
  auto rules = daemon.firewall.rules();
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].name == "ssh");
  CHECK(rules[0].packets == 4);
  CHECK(rules[0].bytes == 240);
  CHECK(rules[0].match == "tcp 22");
  CHECK_FALSE(rules[1].enabled);
  CHECK(rules[1].packets == 0);  // disabled: not in the kernel, whatever a stale entry says
  FirewallStatus status = daemon.firewall.status();
  CHECK(status.rules == 2);
  CHECK(status.rules_enabled == 1);
  CHECK(status.generation == 1);
}

TEST_CASE_FIXTURE(StartedOnTwoRules,
                  "drift repair loads the whole ruleset again, whatever the kernel holds now") {
  daemon.firewall.set_rule_enabled("web", true, false);  // an edit, not a replacement
  const ir::Ruleset before = kernel.last();
  REQUIRE(kernel.applied.size() == 1);
  kernel.current.chains.clear();  // someone else emptied the table
  daemon.firewall.repair_drift("test");
  REQUIRE(kernel.applied.size() == 2);  // a whole replacement, not an edit of what is gone
  CHECK(kernel.last() == before);
  CHECK(daemon.firewall.generation() == 3);
}

TEST_CASE_FIXTURE(
    StartedOnTwoRules,
    "a reload refills the table it loaded: a start and a drift repair replace it whole") {
  CHECK(kernel.refills == 0);  // at start the table may hold anything, or be someone else's
  files.write(std::string(kTwoRules) +
              "[[rule]]\nname='dns'\nprotocols='udp'\nports=[53]\naction='accept'\n");
  daemon.firewall.reload();
  REQUIRE(kernel.applied.size() == 2);
  CHECK(kernel.refills == 1);  // FakeKernel::refill checked what it was told the table holds
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh", "dns"});
  kernel.current.chains.clear();  // someone else emptied the table
  daemon.firewall.repair_drift("test");
  REQUIRE(kernel.applied.size() == 3);
  CHECK(kernel.refills == 1);  // whole: the record of what the table holds is not trusted
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh", "dns"});
  // A refill the kernel refuses (the table not what we recorded) is followed by a whole load.
  kernel.refuse_refill = true;
  files.write(kTwoRules);
  daemon.firewall.reload();
  REQUIRE(kernel.applied.size() == 4);
  CHECK(kernel.refills == 1);
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh"});
  CHECK(daemon.firewall.status().loaded_from == "policy");
}

TEST_CASE("any sequence of toggles leaves the kernel with what a whole load of that state holds") {
  // Rules that become several kernel rules (two address families, zones, limits with an
  // "over limit" companion, logging), next to each other and apart, so that inserts
  // must find their place after neighbours that are themselves toggled on and off.
  Files files;
  files.write(
      "[zone.lan]\ninterfaces=['lan0']\n[zone.wan]\ninterfaces=['wan0']\n"
      "[[rule]]\nname='a'\nprotocols=['tcp','udp']\nports=[53]\naction='accept'\n"
      "[[rule]]\nname='b'\nfrom=['10.0.0.0/8','fd00::/"
      "8']\nports=[22]\nprotocols='tcp'\naction='accept'\n"
      "[[rule]]\nname='c'\nfrom='wan'\nprotocols='tcp'\nports=[80]\naction='accept'\nlimit='10/"
      "minute'\n"
      "[[rule]]\nname='d'\nfrom='lan'\nprotocols='udp'\nports=[5353]\naction='drop'\nlog="
      "true\nenabled=false\n"
      "[[rule]]\nname='e'\nfrom='wan'\nprotocols='tcp'\nports=[443]\naction='reject'\n"
      "[[rule]]\nname='f'\ndirection='out'\nprotocols='tcp'\nports=[25]\naction='drop'\n");
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon(kernel, files, clock);
  daemon.firewall.start();
  ParsedPolicy expected = parse_policy_file(files.path(), SystemTables{});
  REQUIRE(expected.ok());
  std::mt19937 random(7);
  const std::vector<std::string> names{"a", "b", "c", "d", "e", "f"};
  for (int step = 0; step < 300; ++step) {
    const std::string& name = names[random() % names.size()];
    bool enabled = random() % 2 == 0;
    daemon.firewall.set_rule_enabled(name, enabled, false);
    expected.policy.find_rule(name)->enabled = enabled;
    REQUIRE_MESSAGE(kernel.last() == compile_policy(expected.policy),
                    "after step " << step << ": " << name << " " << enabled);
  }
  CHECK(kernel.applied.size() == 1);  // every toggle was an edit of the loaded table
  CHECK(kernel.edits.size() > 100);
}

TEST_CASE("toggles of merged rules are element edits: the kernel and our record agree in order") {
  // Eight rules of one shape between two others: the eight become one map (merge_rules.h).
  Files files;
  // No neighbour stacks: their copies of input rules for published ports are plain rules,
  // whose removal would be in these edits too (neighbours_test.cpp).
  std::string text =
      "[neighbours]\ndocker=false\npodman=false\nlibvirt=false\nkubernetes=false\n"
      "[[rule]]\nname='first'\nprotocols='udp'\nports=[53]\naction='accept'\n";
  for (int i = 0; i < 8; ++i)
    text += "[[rule]]\nname='m" + std::to_string(i) + "'\nprotocols='tcp'\nports=[" +
            std::to_string(100 + i) + "]\nfrom=['10.0.0." + std::to_string(i) +
            "', 'fd00::" + std::to_string(i + 1) + "']\naction='" + (i % 3 ? "accept" : "drop") +
            "'\n";
  text += "[[rule]]\nname='last'\nprotocols='udp'\nports=[54]\naction='accept'\n";
  files.write(text);
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon(kernel, files, clock);
  daemon.firewall.start();
  REQUIRE(kernel.last().maps.size() == 2);  // an IPv4 and an IPv6 map
  ParsedPolicy expected = parse_policy_file(files.path(), SystemTables{});
  REQUIRE(expected.ok());
  auto by_comment = [](ir::Ruleset ruleset) {
    for (ir::RuleMap& map : ruleset.maps)
      std::sort(
          map.elements.begin(), map.elements.end(),
          [](const ir::MapElement& a, const ir::MapElement& b) { return a.comment < b.comment; });
    return ruleset;
  };
  std::mt19937 random(5);
  for (int step = 0; step < 200; ++step) {
    const std::string name =
        random() % 5 == 0 ? (random() % 2 ? "first" : "last") : "m" + std::to_string(random() % 8);
    const bool enabled = random() % 2 == 0;
    daemon.firewall.set_rule_enabled(name, enabled, false);
    expected.policy.find_rule(name)->enabled = enabled;
    REQUIRE_MESSAGE(kernel.last() == daemon.firewall.loaded_ruleset(), "after step " << step);
    REQUIRE_MESSAGE(by_comment(kernel.last()) == by_comment(compile_policy(expected.policy)),
                    "after step " << step << ": " << name << " " << enabled);
  }
  CHECK(kernel.applied.size() == 1);
  const std::size_t edits = kernel.edits.size();
  daemon.firewall.set_rule_enabled("m3", true, false);
  daemon.firewall.set_rule_enabled("m3", false, false);
  REQUIRE(kernel.edits.size() == edits + (expected.policy.find_rule("m3")->enabled ? 1u : 2u));
  const TableEdit& off = kernel.edits.back();
  CHECK(off.removes.empty());
  CHECK(off.inserts.empty());
  REQUIRE(off.maps.size() == 2);  // one transaction for both families
  CHECK(off.maps[0].remove.size() == 1);
  CHECK(off.maps[0].remove[0].comment == "m3");
  // Counters: a policy rule's element counters (both maps) add up, like its rules'.
  kernel.counters = {
      {"input/m1", "m4", 3, 300}, {"input/m2", "m4", 2, 200}, {"input", "first", 1, 10}};
  daemon.firewall.set_rule_enabled("m4", true, false);
  for (const RuleStatus& status : daemon.firewall.rules()) {
    if (status.name == "m4") CHECK((status.packets == 5 && status.bytes == 500));
    if (status.name == "first" && status.enabled) CHECK(status.packets == 1);
  }
}

TEST_CASE("our record of a set follows any sequence of element changes, as the kernel's does") {
  // Removed elements are only marked in the record and taken out later (firewall.h):
  // whatever the order, what portierd reports as loaded is what the kernel holds.
  Files files;
  files.write("[set.block]\nfamily='ipv4'\nelements=['10.0.0.0/8', '192.0.2.1']\n");
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon(kernel, files, clock);
  daemon.firewall.start();
  auto sorted_elements = [](const ir::Ruleset& ruleset) {
    std::vector<std::vector<std::string>> sets;
    for (const ir::NamedSet& set : ruleset.sets) {
      std::vector<std::string> elements;
      for (const ir::AddressRange& range : set.elements)
        elements.push_back(std::string(range.first.bytes.begin(), range.first.bytes.end()) +
                           std::string(range.last.bytes.begin(), range.last.bytes.end()));
      std::sort(elements.begin(), elements.end());
      sets.push_back(elements);
    }
    return sets;
  };
  std::mt19937 random(11);
  std::set<std::string> present{"192.0.2.1"};
  for (int step = 0; step < 400; ++step) {
    std::string address = "198.51.100." + std::to_string(random() % 40);
    if (present.count(address)) {
      daemon.firewall.remove_set_elements("block", {address});
      present.erase(address);
    } else {
      daemon.firewall.add_set_elements("block", {address}, std::nullopt);
      present.insert(address);
    }
    if (step % 50 == 0)
      REQUIRE(sorted_elements(daemon.firewall.loaded_ruleset()) == sorted_elements(kernel.last()));
  }
  CHECK(kernel.applied.size() == 1);  // every change went straight into the kernel's set
  CHECK(sorted_elements(daemon.firewall.loaded_ruleset()) == sorted_elements(kernel.last()));
  const auto before_repair = sorted_elements(kernel.last());
  daemon.firewall.repair_drift("test");  // loads our record whole: the same elements again
  CHECK(kernel.applied.size() == 2);
  CHECK(sorted_elements(kernel.last()) == before_repair);
}

namespace {

std::vector<std::uint64_t> cgroup_ids(const ir::Ruleset& ruleset, const std::string& set) {
  std::vector<std::uint64_t> ids;
  for (const ir::NamedSet& named : ruleset.sets)
    if (named.name == set)
      for (const ir::CgroupMember& member : named.cgroups) ids.push_back(member.id);
  return ids;
}

constexpr std::string_view kSshBind =
    "[[bind]]\nname='ssh-owner'\nprotocols='tcp'\nports=[22]\nunit='ssh.service'\n"
    "[[rule]]\nname='ssh'\nprotocols='tcp'\nports=[22]\naction='accept'\n";

}  // namespace

TEST_CASE(
    "binds follow their unit: not running is a state: start, restart and stop change only its "
    "set") {
  Files files;
  files.write(kSshBind);
  FakeKernel kernel;
  FakeClock clock;
  portier::testing::FakeTree tree;
  tree.make("system.slice", 3);
  Daemon daemon(kernel, files, clock, &tree);

  // Boot: portierd before ssh.service. The policy loads; nobody may serve port 22 yet.
  CHECK(daemon.firewall.start().empty());
  CHECK(daemon.firewall.status().loaded_from == "policy");
  REQUIRE(kernel.applied.size() == 1);
  CHECK(cgroup_ids(kernel.last(), "cgroups_ssh-owner").empty());
  auto owners = daemon.firewall.status().owners;
  REQUIRE(owners.size() == 1);
  CHECK(owners[0].kind == "bind");
  CHECK(owners[0].name == "ssh-owner");
  CHECK(owners[0].owner == "ssh.service");
  CHECK_FALSE(owners[0].cgroup);
  CHECK(owners[0].since == clock.now);
  CHECK_FALSE(daemon.firewall.follow_cgroups());  // nothing changed
  CHECK(daemon.firewall.cgroups_to_watch() == std::vector<std::string>{"", "system.slice"});

  // ssh.service starts: one set edit, no other change to the table.
  const auto generation = daemon.firewall.generation();
  const auto rules_before = kernel.last().chains;
  clock.now += std::chrono::seconds(5);
  tree.make("system.slice/ssh.service", 100);
  CHECK(daemon.firewall.follow_cgroups());
  CHECK(kernel.applied.size() == 1);
  CHECK(kernel.edits.empty());
  REQUIRE(kernel.set_edits.size() == 1);
  CHECK(kernel.set_edits[0].set == "cgroups_ssh-owner");
  CHECK(kernel.set_edits[0].remove.empty());
  CHECK(kernel.set_edits[0].add == std::vector<ir::AddressRange>{ir::cgroup_element(100)});
  CHECK(cgroup_ids(kernel.last(), "cgroups_ssh-owner") == std::vector<std::uint64_t>{100});
  CHECK(kernel.last().chains == rules_before);
  CHECK(daemon.firewall.generation() == generation);
  owners = daemon.firewall.status().owners;
  REQUIRE(owners[0].cgroup);
  CHECK(*owners[0].cgroup == ir::CgroupMember{"system.slice/ssh.service", 100});
  CHECK(owners[0].since == clock.now);
  // The rendering of what is loaded names the cgroup by its path.
  CHECK(daemon.firewall.ruleset_text().find("elements = { \"system.slice/ssh.service\" }") !=
        std::string::npos);

  // Its own sub-cgroups change nothing: the level match covers them.
  tree.make("system.slice/ssh.service/worker", 101);
  CHECK_FALSE(daemon.firewall.follow_cgroups());

  // systemctl restart ssh: the cgroup goes and comes back with a new id.
  tree.remove("system.slice/ssh.service/worker");
  tree.remove("system.slice/ssh.service");
  CHECK(daemon.firewall.follow_cgroups());
  CHECK(cgroup_ids(kernel.last(), "cgroups_ssh-owner").empty());
  tree.make("system.slice/ssh.service", 102);
  CHECK(daemon.firewall.follow_cgroups());
  REQUIRE(kernel.set_edits.size() == 3);
  CHECK(kernel.set_edits[1].remove == std::vector<ir::AddressRange>{ir::cgroup_element(100)});
  CHECK(kernel.set_edits[2].add == std::vector<ir::AddressRange>{ir::cgroup_element(102)});
  CHECK(cgroup_ids(kernel.last(), "cgroups_ssh-owner") == std::vector<std::uint64_t>{102});
  // Both events at once (the watch saw them together): one edit swaps the ids.
  tree.remove("system.slice/ssh.service");
  tree.make("system.slice/ssh.service", 103);
  CHECK(daemon.firewall.follow_cgroups());
  REQUIRE(kernel.set_edits.size() == 4);
  CHECK(kernel.set_edits[3].remove == std::vector<ir::AddressRange>{ir::cgroup_element(102)});
  CHECK(kernel.set_edits[3].add == std::vector<ir::AddressRange>{ir::cgroup_element(103)});
  CHECK(kernel.applied.size() == 1);
  CHECK(kernel.edits.empty());

  // A reload finds it where it is now.
  daemon.firewall.reload();
  CHECK(cgroup_ids(kernel.last(), "cgroups_ssh-owner") == std::vector<std::uint64_t>{103});
  // A restart of portierd too, with the unit stopped meanwhile.
  tree.remove("system.slice/ssh.service");
  Daemon restarted(kernel, files, clock, &tree);
  CHECK(restarted.firewall.start().empty());
  CHECK(restarted.firewall.status().loaded_from == "policy");
  CHECK(cgroup_ids(kernel.last(), "cgroups_ssh-owner").empty());

  // If the kernel's set is not what we think (say, changed behind our back), the table is
  // loaded whole, with the owner where it is.
  tree.make("system.slice/ssh.service", 104);
  kernel.refuse_sets = true;
  const auto applied = kernel.applied.size();
  CHECK(restarted.firewall.follow_cgroups());
  CHECK(kernel.applied.size() == applied + 1);
  CHECK(cgroup_ids(kernel.last(), "cgroups_ssh-owner") == std::vector<std::uint64_t>{104});
}

TEST_CASE("binds: a cgroup owner, and a rule's unit, follow the same way: panic has none") {
  Files files;
  files.write(
      "[[bind]]\nname='lab'\nprotocols='udp'\nports=[53]\ncgroup='/lab/dns/'\n"
      "[[rule]]\nname='apt'\ndirection='out'\nunit='apt.service'\naction='accept'\n");
  FakeKernel kernel;
  FakeClock clock;
  portier::testing::FakeTree tree;
  Daemon daemon(kernel, files, clock, &tree);
  CHECK(daemon.firewall.start().empty());
  CHECK(daemon.firewall.status().owners.size() == 2);
  CHECK(daemon.firewall.cgroups_to_watch() == std::vector<std::string>{""});
  tree.make("lab", 5);
  CHECK_FALSE(daemon.firewall.follow_cgroups());
  CHECK(daemon.firewall.cgroups_to_watch() == std::vector<std::string>{"", "lab"});
  tree.make("lab/dns", 6);
  tree.make("system.slice", 7);
  tree.make("system.slice/apt.service", 8);
  CHECK(daemon.firewall.follow_cgroups());
  CHECK(cgroup_ids(kernel.last(), "cgroups_lab") == std::vector<std::uint64_t>{6});
  CHECK(cgroup_ids(kernel.last(), "cgroups_apt") == std::vector<std::uint64_t>{8});
  for (const OwnerStatus& owner : daemon.firewall.status().owners) {
    CHECK(owner.cgroup.has_value());
    CHECK(owner.kind == (owner.name == "apt" ? "rule" : "bind"));
  }
  // In panic mode nothing but loopback passes: there is no set to follow.
  daemon.firewall.set_panic(true, false);
  tree.remove("lab/dns");
  CHECK_FALSE(daemon.firewall.follow_cgroups());
  daemon.firewall.set_panic(false, false);
  CHECK(cgroup_ids(kernel.last(), "cgroups_lab").empty());
  CHECK(cgroup_ids(kernel.last(), "cgroups_apt") == std::vector<std::uint64_t>{8});
}

TEST_CASE("every shipped policy boots as itself with none of its bound units running") {
  for (const char* name : {"workstation.toml", "server.toml", "home-router.toml"}) {
    CAPTURE(name);
    Files files;
    std::ifstream shipped(fs::path(PORTIER_SOURCE_DIR) / "rules" / "policies" / name);
    std::stringstream text;
    text << shipped.rdbuf();
    REQUIRE(!text.str().empty());
    files.write(text.str());
    FakeKernel kernel;
    FakeClock clock;
    portier::testing::FakeTree tree;  // an empty tree: nothing runs yet
    Daemon daemon(kernel, files, clock, &tree, SystemTables::load());
    CHECK(daemon.firewall.start().empty());
    CHECK(daemon.firewall.status().loaded_from == "policy");
    for (const OwnerStatus& owner : daemon.firewall.status().owners) CHECK_FALSE(owner.cgroup);
  }
}

// Kernels before 5.12 refuse the owner flag (EOPNOTSUPP or EINVAL, by version): the table
// is loaded without it. A refusal of anything but the table, even with that errno, is no
// such kernel: it fails the load.
TEST_CASE("an owned table the kernel does not support is loaded without the flags") {
  for (KernelObject object : {KernelObject::table, KernelObject::rule}) {
    for (int error : {EOPNOTSUPP, EINVAL}) {
      CAPTURE(error);
      CAPTURE(object == KernelObject::table);
      Files files;
      files.write(kTwoRules);
      FakeKernel kernel;
      kernel.refuse_owned = KernelError(std::string("kernel refused it: ") + std::strerror(error),
                                        error, object, "it");
      FakeClock clock;
      FirewallOptions options{files.path(), "", {}, nullptr, [&clock] { return clock.now; },
                              &files.state};
      options.compile.owner = true;
      Firewall firewall(kernel, options, {});
      if (object == KernelObject::table) {
        CHECK(firewall.start().empty());
        REQUIRE(kernel.applied.size() == 1);
        CHECK_FALSE(kernel.last().owner);
        CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh"});
      } else {
        CHECK_THROWS_AS(firewall.start(), KernelError);
        CHECK(kernel.applied.empty());
      }
    }
  }
}

TEST_CASE(
    "a state store that cannot be written: changes are in force, the writes reported failed") {
  Files files;
  files.write(kTwoRules);
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon(kernel, files, clock);
  daemon.firewall.start();
  const std::string last_good = files.state.text(StateFile::last_good);
  REQUIRE(!last_good.empty());
  files.state.full = true;
  daemon.firewall.set_rule_enabled("web", true, false);
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"ssh", "web"});
  daemon.firewall.flush_state();
  auto outcomes = daemon.firewall.take_state_outcomes();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].generation == daemon.firewall.state_generation());
  CHECK(outcomes[0].error == "state/runtime.toml: No space left on device");
  CHECK_FALSE(files.state.read(StateFile::runtime));
  // A reload of a changed file is in force; only the copy for a later start is stale.
  files.write("[[rule]]\nname='dns'\nprotocols='udp'\nports=[53]\naction='accept'\n");
  daemon.firewall.reload();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"dns"});
  CHECK(files.state.text(StateFile::last_good) == last_good);
  files.state.full = false;
  daemon.firewall.reload();
  CHECK(files.state.text(StateFile::last_good).find("name = 'dns'") != std::string::npos);
  CHECK(files.state.text(StateFile::previous_good) == last_good);
}

TEST_CASE_FIXTURE(StartedOnTwoRules,
                  "a reload's last good copy is written after the call, and before it is read") {
  const std::string started = files.state.text(StateFile::last_good);
  REQUIRE(started.find("name = 'ssh'") != std::string::npos);
  files.state.hold_last_good = true;  // the store's thread has not got to the posts yet
  files.write("[[rule]]\nname='dns'\nprotocols='udp'\nports=[53]\naction='accept'\n");
  daemon.firewall.reload();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"dns"});
  // The reply does not wait for it: the state store's thread writes it.
  CHECK(files.state.text(StateFile::last_good) == started);
  files.state.wait_for_last_good();
  const std::string dns = files.state.text(StateFile::last_good);
  CHECK(dns.find("name = 'dns'") != std::string::npos);
  CHECK(files.state.text(StateFile::previous_good) == started);
  // A rollback right after a reload, before the write, goes to the policy before it.
  files.write("[[rule]]\nname='alt'\nprotocols='tcp'\nports=[8080]\naction='accept'\n");
  daemon.firewall.reload();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"alt"});
  daemon.firewall.rollback();
  CHECK(rule_names(kernel.last()) == std::vector<std::string>{"dns"});
  CHECK(files.state.text(StateFile::previous_good) == dns);
}

TEST_CASE("status with neighbours: the neighbour zones among the interfaces the port lists") {
  Files files;
  files.write(kTwoRules);  // every neighbour stack on, as by default
  FakeKernel kernel;
  FakeClock clock;
  std::vector<std::string> interfaces{"lo", "eth0", "docker0", "br-5f3a", "virbr0"};
  int listings = 0;
  FirewallOptions options{files.path(), "", {}, nullptr, [&clock] { return clock.now; },
                          &files.state};
  options.interfaces = [&] {
    ++listings;
    return interfaces;
  };
  Firewall firewall(kernel, std::move(options), {});
  firewall.start();
  // sd_notify's status() after every change lists no interfaces.
  CHECK(firewall.status().neighbours.empty());
  CHECK(listings == 0);
  FirewallStatus status = firewall.status_with_neighbours();
  CHECK(listings == 1);
  CHECK(status.neighbours ==
        NeighboursSeen{{"docker", {"br-5f3a", "docker0"}}, {"libvirt", {"virbr0"}}});
  CHECK(status.rules == 2);
  CHECK(status.rules_enabled == 1);
  // Listed anew each time: an interface that came meanwhile is seen.
  interfaces.push_back("podman0");
  CHECK(firewall.status_with_neighbours().neighbours ==
        NeighboursSeen{
            {"docker", {"br-5f3a", "docker0"}}, {"libvirt", {"virbr0"}}, {"podman", {"podman0"}}});
  CHECK(listings == 2);
}

TEST_CASE_FIXTURE(StartedOnTwoRules, "status with neighbours and no interfaces port sees none") {
  CHECK(daemon.firewall.status_with_neighbours().neighbours.empty());
}

TEST_CASE_FIXTURE(StartedOnTwoRules,
                  "the drift step loads our table again when others changed it, and only then") {
  portier::testing::FakeKernelChanges changes;
  const ir::Ruleset ours = kernel.last();
  REQUIRE(kernel.applied.size() == 1);
  // No notification, or others changing another table: nothing is loaded.
  CHECK_FALSE(daemon.firewall.repair_drift_if_changed(changes));
  changes.committed_by_others("filter");
  CHECK_FALSE(daemon.firewall.repair_drift_if_changed(changes));
  CHECK(changes.asked == std::vector<std::string>{"portier", "portier"});
  CHECK(kernel.applied.size() == 1);
  CHECK(kernel.edits.empty());
  CHECK(daemon.firewall.generation() == 1);
  // Someone emptied our table: the whole ruleset goes back.
  kernel.current.chains.clear();
  changes.committed_by_others("portier");
  CHECK(daemon.firewall.repair_drift_if_changed(changes));
  REQUIRE(kernel.applied.size() == 2);
  CHECK(kernel.applied.back() == ours);
  CHECK(kernel.last() == ours);
  CHECK(daemon.firewall.generation() == 2);
  // The notification has been read: the next turn of the loop has nothing to repair.
  CHECK_FALSE(daemon.firewall.repair_drift_if_changed(changes));
  CHECK(kernel.applied.size() == 2);
  // Lost notifications may have been about our table.
  changes.lost = true;
  CHECK(daemon.firewall.repair_drift_if_changed(changes));
  CHECK(kernel.applied.size() == 3);
  CHECK(kernel.last() == ours);
}

TEST_CASE(
    "a logged packet's verdict: its chain's default, or what its rule does in the policy in "
    "force") {
  Files files;
  files.write(
      "[[rule]]\nname='ssh'\nprotocols='tcp'\nports=[22]\naction='accept'\n"
      "[[rule]]\nname='netbios-in'\nprotocols='udp'\nports=[137]\naction='drop'\n"
      "[[rule]]\nname='ident'\nprotocols='tcp'\nports=[113]\naction='reject'\n");
  FakeKernel kernel;
  FakeClock clock;
  Daemon daemon(kernel, files, clock);
  daemon.firewall.start();
  PacketVerdicts verdicts;
  auto verdict = [&](std::string_view prefix) {
    return verdicts.of(parse_log_prefix(prefix), daemon.firewall);
  };
  CHECK(verdict("portier ssh ") == "accepted");
  CHECK(verdict("portier netbios-in ") == "dropped");
  CHECK(verdict("portier ident ") == "rejected");
  CHECK(verdict("portier denied input ") == "denied");
  CHECK(verdict("portier accepted output ") == "accepted");
  CHECK(verdict("portier gone ") == "logged");  // a rule the policy no longer has
  CHECK(verdict("IN=eth0 ") == "logged");       // another log statement in our group
  // A new ruleset may change what a rule does; a timed rule is a rule too.
  files.write("[[rule]]\nname='ssh'\nprotocols='tcp'\nports=[22]\naction='drop'\n");
  daemon.firewall.reload();
  TimedRuleRequest request;
  request.protocols = {"tcp"};
  request.ports = {"8080"};
  request.duration = std::chrono::minutes(30);
  const std::string timed = daemon.firewall.add_timed_rule(request);
  CHECK(verdict("portier ssh ") == "dropped");
  CHECK(verdict("portier netbios-in ") == "logged");
  CHECK(verdict("portier " + timed + " ") == "accepted");
}
