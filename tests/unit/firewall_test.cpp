// The daemon core against a fake kernel: what it loads, when, and what it keeps on failure.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "compile_policy.h"
#include "firewall.h"

using namespace portier;
namespace fs = std::filesystem;

namespace {

class FakeKernel final : public Kernel {
 public:
  void apply(const ir::Ruleset& ruleset) override {
    if (refuse) throw KernelError("kernel refused rule \"x\" in chain input: Invalid argument");
    applied.push_back(ruleset);
  }
  std::vector<RuleCounter> read_counters(const std::string& table) override {
    CHECK(table == "portier");
    return counters;
  }
  std::vector<ir::Ruleset> applied;
  std::vector<RuleCounter> counters;
  bool refuse = false;
};

// A policy file in a fresh temporary directory, removed afterwards.
struct PolicyFile {
  PolicyFile() : dir(fs::temp_directory_path() / ("portier-test-" + std::to_string(::getpid()))) {
    fs::create_directories(dir / "state");
  }
  ~PolicyFile() { fs::remove_all(dir); }
  void write(std::string_view text) const { std::ofstream(path()) << text; }
  std::string path() const { return (dir / "policy.toml").string(); }
  std::string state() const { return (dir / "state").string(); }
  fs::path dir;
};

constexpr std::string_view kTwoRules =
    "[[rule]]\nname='ssh'\nprotocols='tcp'\nports=[22]\naction='accept'\n"
    "[[rule]]\nname='web'\nprotocols='tcp'\nports=[80]\naction='accept'\nenabled=false\n";

std::vector<std::string> rule_names(const ir::Ruleset& ruleset) {
  std::vector<std::string> names;
  for (const ir::Chain& chain : ruleset.chains)
    for (const ir::Rule& rule : chain.rules)
      if (!rule.comment.empty()) names.push_back(rule.comment);
  return names;
}

}  // namespace

TEST_CASE("reload loads the compiled policy and keeps a copy of it as last good") {
  PolicyFile file;
  file.write(kTwoRules);
  FakeKernel kernel;
  Firewall firewall(kernel, {file.path(), file.state(), {}, {}}, SystemTables{});
  firewall.reload();
  REQUIRE(kernel.applied.size() == 1);
  CHECK(rule_names(kernel.applied[0]) == std::vector<std::string>{"ssh"});
  CHECK(firewall.generation() == 1);
  std::ifstream saved(fs::path(file.state()) / "last-good.toml");
  std::string text((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  CHECK(text == kTwoRules);
}

TEST_CASE("an invalid policy on reload changes nothing in the kernel") {
  PolicyFile file;
  file.write(kTwoRules);
  FakeKernel kernel;
  Firewall firewall(kernel, {file.path(), file.state(), {}, {}}, SystemTables{});
  firewall.reload();
  file.write("[[rule]]\nname='ssh'\naction='alow'\n");
  CHECK_THROWS_WITH_AS(firewall.reload(),
                       doctest::Contains("policy.toml:3:8: error: unknown action 'alow' for "
                                         "'action': use accept, drop or reject"),
                       PolicyError);
  CHECK(kernel.applied.size() == 1);
  CHECK(firewall.generation() == 1);
  CHECK(firewall.rules().size() == 2);  // the old policy is still the one in force
}

TEST_CASE("toggles apply at once, survive a reload, and are undone when the kernel refuses") {
  PolicyFile file;
  file.write(kTwoRules);
  FakeKernel kernel;
  Firewall firewall(kernel, {file.path(), file.state(), {}, {}}, SystemTables{});
  firewall.reload();

  firewall.set_rule_enabled("web", true);
  REQUIRE(kernel.applied.size() == 2);
  CHECK(rule_names(kernel.applied[1]) == std::vector<std::string>{"ssh", "web"});

  firewall.set_rule_enabled("ssh", false);
  CHECK(rule_names(kernel.applied[2]) == std::vector<std::string>{"web"});

  firewall.reload();  // the file did not change; the runtime toggles stay
  CHECK(rule_names(kernel.applied[3]) == std::vector<std::string>{"web"});

  kernel.refuse = true;
  CHECK_THROWS_AS(firewall.set_rule_enabled("ssh", true), KernelError);
  kernel.refuse = false;
  auto rules = firewall.rules();
  CHECK_FALSE(rules[0].enabled);  // the refused toggle did not stick

  CHECK_THROWS_WITH_AS(firewall.set_rule_enabled("nope", true),
                       "no rule or forward named 'nope' in the policy", NoSuchRule);
}

TEST_CASE("rules() joins the policy with the kernel's counters by rule name") {
  PolicyFile file;
  file.write(kTwoRules);
  FakeKernel kernel;
  Firewall firewall(kernel, {file.path(), file.state(), {}, {}}, SystemTables{});
  firewall.reload();
  kernel.counters = {{"input", "", 5, 500}, {"input", "ssh", 3, 180}, {"input", "web", 9, 9}};
  auto rules = firewall.rules();
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].name == "ssh");
  CHECK(rules[0].packets == 3);
  CHECK(rules[0].bytes == 180);
  CHECK(rules[0].match == "tcp 22");
  CHECK(rules[1].name == "web");
  CHECK_FALSE(rules[1].enabled);
  CHECK(rules[1].packets == 0);  // disabled: not in the kernel, whatever a stale entry says

  FirewallStatus status = firewall.status();
  CHECK(status.rules == 2);
  CHECK(status.rules_enabled == 1);
  CHECK(status.generation == 1);
}
