#include "progress.h"

#include "output.h"

namespace portier::cli {

std::string progress_line(std::string_view set, std::uint64_t done, std::uint64_t total,
                          std::string_view verb) {
  // Rounded down: 999,999 of a million is not "100%" while the last call is still out.
  std::uint64_t percent = total == 0 ? 100 : done >= total ? 100 : done * 100 / total;
  std::string line(set);
  line += ": " + human_count(done) + " of " + human_count(total) +
          (total == 1 ? " element " : " elements ");
  line += verb;
  line += " (" + std::to_string(percent) + "%)";
  return line;
}

std::string rewrite_line(std::size_t previous_width, std::string_view line) {
  // Blanks rather than an erase-line escape: the text is all there is, on any terminal.
  std::string out = "\r";
  out += line;
  if (line.size() < previous_width) out.append(previous_width - line.size(), ' ');
  return out;
}

}  // namespace portier::cli
