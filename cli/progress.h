// The progress line of long set loads: `blocklist: 350k of 1.0M elements added (35%)`,
// rewritten in place on a terminal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace portier::cli {

/// `SET: DONE of TOTAL elements VERB (PERCENT%)` with human numbers; the percentage is
/// rounded down, so 100% means every element is through.
std::string progress_line(std::string_view set, std::uint64_t done, std::uint64_t total,
                          std::string_view verb);

/// What to write to a terminal to replace a line of `previous_width` columns with `line`:
/// a carriage return, the line, and blanks over what is left of the previous one.
std::string rewrite_line(std::size_t previous_width, std::string_view line);

}  // namespace portier::cli
