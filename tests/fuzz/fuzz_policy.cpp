// Policy text through the whole front end: parse and validate (parse_policy), the
// diagnostics' report, compile, render as nft text, encode as the netlink batch (whole and
// as a refill over itself), and the write-back round trip: a policy written by
// write_policy() (the daemon's last-good copy) must parse again, write back to the same
// text and compile to the same ruleset.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "compile_policy.h"
#include "encode_batch.h"
#include "fuzz_support.h"
#include "parse_policy.h"
#include "render_nft.h"
#include "write_policy.h"

using namespace portier;

namespace {

// A folder that does not exist: a relative set file names nothing readable.
constexpr const char* kFileName = "/nonexistent/portier-fuzz/policy.toml";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const SystemTables& tables = fuzz::golden_tables();
  ParsedPolicy parsed = parse_policy(text, kFileName, tables);
  (void)parsed.report();
  if (!parsed.ok()) {
    // A fragment (a runtime rule) skips the cross-checks; validate it on its own.
    ParsedPolicy fragment = parse_policy_fragment(text, kFileName, tables);
    if (fragment.ok()) (void)validate_policy(fragment.policy);
    return 0;
  }
  // A policy that passed validation must compile, render and encode: portierd would
  // otherwise accept a file it then cannot load.
  ir::Ruleset ruleset;
  try {
    ruleset = compile_policy(parsed.policy);
    (void)render_nft_replace(ruleset);
    (void)encode_replace_batch(ruleset, 1);
    (void)encode_refill_batch(ruleset, ruleset, 1);  // a reload of it over itself
    (void)without_owners(ruleset, disabled_names(parsed.policy));
  } catch (const std::exception& e) {
    fuzz::fail(std::string("a valid policy does not compile, render or encode: ") + e.what());
  }

  const std::string written = write_policy(parsed.policy);
  ParsedPolicy again = parse_policy(written, kFileName, tables);
  if (!again.ok())
    fuzz::fail("write_policy() wrote a policy that does not parse:\n" + again.report() + written);
  if (write_policy(again.policy) != written)
    fuzz::fail("write_policy() is not a fixed point:\n" + written);
  if (compile_policy(again.policy) != ruleset) {
    fuzz::fail("the written-back policy compiles to another ruleset:\n" + written);
  }
  return 0;
}
