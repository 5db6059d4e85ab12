// Reading TOML policy files into the policy model, with every problem reported by place.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "diagnostic.h"
#include "file_reader.h"
#include "policy.h"
#include "services.h"

namespace portier {

struct ParsedPolicy {
  Policy policy;  // meaningful only when diagnostics hold no error
  std::vector<Diagnostic> diagnostics;
  std::map<std::string, std::string> sources;  // file name -> text, for printing diagnostics

  bool ok() const { return !has_errors(diagnostics); }
  /// Every diagnostic with its source line and caret, one after the other.
  std::string report() const;
};

/// What reading one policy file again can skip: the `[[rule]]` tables of its rule tail
/// (the `[[rule]]` tables after which no other table follows), each kept with the text it
/// was read from. Reading the file again parses only the rules whose text is new; the
/// others are copied, moved to their new lines. portierd keeps one for its policy file, so a
/// reload after an edit of a few rules parses those and the head of the file. The result
/// is the same as reading the whole text (fuzz_policy checks it). It keeps only the rules
/// of the last read, for one file name and one SystemTables.
class PolicyReadCache {
 public:
  /// Reads the main policy file's `text` into `policy` as a whole read would, and keeps
  /// its tail's rules. False, with nothing added to `policy`, when the text has no rule tail
  /// or a part does not parse alone: then the whole text is parsed as before. The kept rules
  /// stay then, unless `file_name` or `tables` are not those of the last read.
  bool read(std::string_view text, const std::string& file_name, const SystemTables& tables,
            const FileReader& files, Policy& policy, std::vector<Diagnostic>& diagnostics);
  /// How many distinct rule texts are kept.
  std::size_t size() const { return blocks_.size(); }

 private:
  // One rule table's text as read alone: its rule (none if it has errors) and diagnostics,
  // with lines counted from its `[[rule]]` line (1) and no file name.
  struct Block {
    std::vector<Rule> rules;
    std::vector<Diagnostic> diagnostics;
    std::uint64_t read = 0;  // the last read that found it
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };
  std::string file_name_;
  const SystemTables* tables_ = nullptr;
  using Blocks = std::unordered_map<std::string, Block, Hash, std::equal_to<>>;
  Blocks blocks_;
  std::uint64_t reads_ = 0;
};

/// Where a long policy `text` is cut to be parsed in two halves on two threads (the
/// offset of a `[[rule]]` line after which only `[[rule]]` tables follow); 0: it is
/// parsed whole. Parsing is the larger part of reading a 10,000-rule policy.
std::size_t parse_split_point(std::string_view text);

/// Parses and validates one policy `text`; `file_name` is what diagnostics call it
/// (and what a set's relative `file` is resolved against).
/// With `cache`, the rule tail is read through it (the same result, faster when it holds
/// most of the rules).
ParsedPolicy parse_policy(std::string_view text, const std::string& file_name,
                          const SystemTables& tables, const FileReader& files = disk_files(),
                          PolicyReadCache* cache = nullptr);

/// Parses policy text without the cross-checks of validate_policy(): for a piece of a
/// policy (a runtime rule) whose zones and sets live in the policy it joins.
ParsedPolicy parse_policy_fragment(std::string_view text, const std::string& file_name,
                                   const SystemTables& tables,
                                   const FileReader& files = disk_files());

/// Reads `path` and its drop-ins: every `*.toml` in the folder named like the file
/// without `.toml` plus `.d` (`/etc/portier/policy.toml` -> `/etc/portier/policy.d/`),
/// merged in name order. Drop-ins may add zones, sets, rules, binds and forwards.
/// Every file (the policy, its drop-ins, set files) is read through `files`.
/// With `cache`, the main file's rule tail is read through it (drop-ins are read whole).
ParsedPolicy parse_policy_file(const std::string& path, const SystemTables& tables,
                               const FileReader& files = disk_files(),
                               PolicyReadCache* cache = nullptr);

/// The drop-in folder of a policy file.
std::string drop_in_dir(const std::string& path);

/// The longest duration: what a u32 of seconds holds (about 136 years), as portierctl and the
/// D-Bus calls carry a timeout.
inline constexpr std::uint64_t kMaxDurationSeconds = UINT32_MAX;

enum class DurationProblem { none, malformed, too_long };

struct Duration {
  std::chrono::seconds value{0};
  DurationProblem problem = DurationProblem::none;
};

/// "30s", "15m", "1h", "1d12h": a sum of whole numbers of seconds, minutes, hours and days,
/// more than 0 and at most kMaxDurationSeconds. The same words in a policy and on the
/// command line (`portierctl allow --for`, `set --timeout`).
Duration parse_duration(std::string_view text);

/// Cross-checks of a merged policy: names used once, zones and sets that exist,
/// rules that can never match. Called by the parse functions; exposed for tests.
std::vector<Diagnostic> validate_policy(const Policy& policy);

}  // namespace portier
