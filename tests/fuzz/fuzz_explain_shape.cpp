// `portierctl explain` packet-shape words (`tcp 203.0.113.9:40000 -> 139 in wan`), and
// the explanation of the shapes that parse, against the golden router policy (zones wan,
// lan and guest*, forward rules, port forwards).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "compile_policy.h"
#include "explain.h"
#include "fuzz_support.h"
#include "parse_policy.h"

using namespace portier;

namespace {

struct Fixture {
  Policy policy;
  ir::Ruleset ruleset;
};

const Fixture& fixture() {
  static const Fixture fixed = [] {
    ParsedPolicy parsed =
        parse_policy_file(PORTIER_GOLDEN_DIR "/router.toml", fuzz::golden_tables());
    if (!parsed.ok()) fuzz::fail("the fixed policy does not parse:\n" + parsed.report());
    ir::Ruleset ruleset = compile_policy(parsed.policy);
    return Fixture{std::move(parsed.policy), std::move(ruleset)};
  }();
  return fixed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Words as the shell or the bus hands them over: split at spaces, none empty, at most
  // 32 (what portierd accepts).
  std::vector<std::string> words;
  std::string word;
  for (std::size_t i = 0; i <= size; ++i) {
    const char c = i < size ? static_cast<char>(data[i]) : ' ';
    if (c == ' ' || c == '\n' || c == '\t' || c == '\0') {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (words.size() > 32) return 0;
  const Fixture& fixed = fixture();
  std::string error;
  std::optional<PacketShape> shape = parse_packet_shape(words, fixed.policy, error);
  if (!shape) {
    if (error.empty()) fuzz::fail("parse_packet_shape refused the words without saying why");
    return 0;
  }
  const ExplainResult result = explain_packet(fixed.ruleset, *shape);
  if (result.verdict != "accept" && result.verdict != "drop" && result.verdict != "reject") {
    fuzz::fail("explain_packet gave verdict '" + result.verdict + "'");
  }
  return 0;
}
