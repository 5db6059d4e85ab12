#include <doctest/doctest.h>

#include <filesystem>

#include "compile_policy.h"
#include "parse_policy.h"
#include "render_nft.h"
#include "write_policy.h"

using namespace portier;
namespace fs = std::filesystem;

// Written back and read again, every golden and shipped policy compiles to the same
// ruleset: the saved last-good policy means what the original meant.
TEST_CASE("write_policy round-trips every golden and shipped policy") {
  const fs::path golden = PORTIER_GOLDEN_DIR;
  const SystemTables tables{ServiceTable::load((golden / "services").string()),
                            UserTable::load((golden / "passwd").string())};
  int policies = 0;
  for (const fs::path& dir : {golden, fs::path(PORTIER_SOURCE_DIR) / "rules" / "policies"}) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() != ".toml") continue;
      CAPTURE(entry.path().string());
      ParsedPolicy original = parse_policy_file(entry.path().string(), tables);
      REQUIRE_MESSAGE(original.ok(), original.report());
      std::string written = write_policy(original.policy);
      ParsedPolicy again = parse_policy(written, "written.toml", tables);
      REQUIRE_MESSAGE(again.ok(), again.report() << written);
      CHECK(compile_policy(again.policy) == compile_policy(original.policy));
      ++policies;
    }
  }
  CHECK(policies >= 10);
}
