// Diagnostics: what the policy engine says about a policy, each pinned to a place in it.
#pragma once

#include <string>
#include <vector>

namespace portier {

/// A place in a policy file. Lines and columns start at 1; 0 means unknown.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};

/// FILE:LINE:COL, all three always: the place of a policy rule as explain and the
/// duplicate-name checks quote it.
std::string to_string(const SourceLocation& where);

enum class Severity { error, warning };

struct Diagnostic {
  Severity severity = Severity::error;
  SourceLocation where;
  std::string message;
};

/// `FILE:LINE:COL: error: message` alone, as tests and D-Bus errors carry it.
std::string format_headline(const Diagnostic& diagnostic);

/// The headline, then the offending source line and a caret under the column,
/// as compilers print them. `source` is the text of the file the diagnostic is in.
std::string format_with_source(const Diagnostic& diagnostic, std::string_view source);

bool has_errors(const std::vector<Diagnostic>& diagnostics);

/// The closest candidate within a small edit distance, for "did you mean" hints; empty if none.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace portier
