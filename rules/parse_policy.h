// Reading a TOML policy into the policy model, with every problem reported by place.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "diagnostic.h"
#include "policy.h"
#include "services.h"

namespace portier {

struct ParsedPolicy {
  Policy policy;  // meaningful only when diagnostics hold no error
  std::vector<Diagnostic> diagnostics;
  std::string text;  // the source, for printing diagnostics with their line

  bool ok() const { return !has_errors(diagnostics); }
  /// Every diagnostic with its source line and caret, one after the other.
  std::string report() const;
};

/// Parses and validates policy `text`; `file_name` is what diagnostics call it.
ParsedPolicy parse_policy(std::string_view text, const std::string& file_name,
                          const ServiceTable& services);

/// Reads `path` and parses it; an unreadable file is one diagnostic naming it.
ParsedPolicy parse_policy_file(const std::string& path, const ServiceTable& services);

}  // namespace portier
