// Writing policy text: a policy model back as a self-contained TOML policy (the daemon
// keeps the last policy the kernel accepted this way, set files and drop-ins folded in,
// so a later start can load it even when the files it came from are broken or gone); a
// rule given at run time as its policy text; and the one-line edit of a policy file that
// `portierctl enable --permanent` makes. Pure: text in, text out.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "policy.h"

namespace portier {

/// TOML text that parses back into the same policy (comments are not kept; runtime
/// toggles are not included unless applied to `policy` first).
std::string write_policy(const Policy& policy);

/// A rule as given at run time (`portierctl allow`, AddTimedRule): its values as the user
/// wrote them, unchecked.
struct RuleFields {
  std::string name;
  std::string direction;
  std::string action;
  std::vector<std::string> protocols;  // empty lists are left out of the text
  std::vector<std::string> ports;
  std::vector<std::string> from;
  std::vector<std::string> to;
};

/// The rule as one `[[rule]]` table of policy text, for parse_policy_fragment() to check
/// and the runtime state to keep.
std::string write_rule(const RuleFields& rule);

/// `text` (the policy file `file_name`) with the rule or forward `name` set to `enabled`:
/// its `enabled` value replaced, or a line `enabled = ...` added under its `name` line
/// with the same indent. Every other byte (comments, layout) stays. None when the text
/// has no rule or forward of that name; throws toml::parse_error if it is not TOML.
std::optional<std::string> edit_enabled(const std::string& text, const std::string& file_name,
                                        const std::string& name, bool enabled);

}  // namespace portier
