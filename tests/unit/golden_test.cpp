// Golden tests of the compiler: every tests/golden/NAME.toml beside NAME.nft, the exact
// nft text it must compile to. PORTIER_UPDATE_GOLDEN=1 rewrites the .nft files (review
// the diff before committing). The integration test test_oracle_golden.sh loads each
// NAME.nft into the kernel to show nft accepts it and portierd loads the same.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "compile_policy.h"
#include "parse_policy.h"
#include "render_nft.h"

using namespace portier;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("golden: every policy in tests/golden compiles to its .nft text") {
  const fs::path dir = PORTIER_GOLDEN_DIR;
  const SystemTables tables{ServiceTable::load((dir / "services").string()),
                           UserTable::load((dir / "passwd").string())};
  const bool update = std::getenv("PORTIER_UPDATE_GOLDEN") != nullptr;
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    ++cases;
    const fs::path expected_path = fs::path(entry.path()).replace_extension(".nft");
    CAPTURE(entry.path().filename().string());
    ParsedPolicy parsed = parse_policy_file(entry.path().string(), tables);
    REQUIRE_MESSAGE(parsed.ok(), parsed.report());
    std::string rendered = render_nft(compile_policy(parsed.policy));
    if (update) std::ofstream(expected_path, std::ios::binary) << rendered;
    REQUIRE_MESSAGE(fs::exists(expected_path), "missing " << expected_path.string());
    CHECK(rendered == read_file(expected_path));
  }
  CHECK(cases >= 5);
}

TEST_CASE("golden: the shipped policies are valid and compile") {
  const fs::path dir = fs::path(PORTIER_SOURCE_DIR) / "rules" / "policies";
  const fs::path golden = PORTIER_GOLDEN_DIR;
  const SystemTables tables{ServiceTable::load((golden / "services").string()),
                           UserTable::load((golden / "passwd").string())};
  int policies = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    ++policies;
    CAPTURE(entry.path().filename().string());
    ParsedPolicy parsed = parse_policy_file(entry.path().string(), tables);
    REQUIRE_MESSAGE(parsed.ok(), parsed.report());
    CHECK(parsed.diagnostics.empty());  // no warnings either
    CHECK_FALSE(render_nft(compile_policy(parsed.policy)).empty());
  }
  CHECK(policies >= 1);
}
