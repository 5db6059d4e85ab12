// Policy text through the whole front end: parse and validate (parse_policy), the same
// read through a PolicyReadCache (as portierd's reloads read it), the diagnostics' report, compile,
// render as nft text, encode as the netlink batch (whole and as a refill over itself), and the
// write-back round trip: a policy written by write_policy() (the daemon's last-good copy) must
// parse again, write back to the same text and compile to the same ruleset.
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

bool same_place(const SourceLocation& a, const SourceLocation& b) {
  return a.file == b.file && a.line == b.line && a.column == b.column;
}

// Whether two reads of one text give the same rules at the same places (write_policy()
// compares the rest).
bool same_places(const Policy& a, const Policy& b) {
  if (a.rules.size() != b.rules.size()) return false;
  for (std::size_t i = 0; i < a.rules.size(); ++i) {
    const Rule& x = a.rules[i];
    const Rule& y = b.rules[i];
    if (!same_place(x.where, y.where) || x.from.size() != y.from.size() ||
        x.to.size() != y.to.size())
      return false;
    for (std::size_t j = 0; j < x.from.size(); ++j)
      if (!same_place(x.from[j].where, y.from[j].where)) return false;
    for (std::size_t j = 0; j < x.to.size(); ++j)
      if (!same_place(x.to[j].where, y.to[j].where)) return false;
  }
  return true;
}

// Reading `text` through the cache (kept from earlier inputs, then from this one) must
// give what the whole read gave.
void check_cached_read(std::string_view text, const SystemTables& tables,
                       const ParsedPolicy& whole) {
  static PolicyReadCache cache;
  for (int pass = 0; pass < 2; ++pass) {
    const ParsedPolicy cached = parse_policy(text, kFileName, tables, disk_files(), &cache);
    if (cached.report() != whole.report())
      fuzz::fail("a read through PolicyReadCache reports otherwise:\n" + cached.report() +
                 "\nthe whole read:\n" + whole.report());
    if (whole.ok() && (write_policy(cached.policy) != write_policy(whole.policy) ||
                       !same_places(cached.policy, whole.policy)))
      fuzz::fail("a read through PolicyReadCache gives another policy");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const SystemTables& tables = fuzz::golden_tables();
  ParsedPolicy parsed = parse_policy(text, kFileName, tables);
  (void)parsed.report();
  check_cached_read(text, tables, parsed);
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
