#include "diagnostic.h"

#include <algorithm>
#include <string_view>

namespace portier {

std::string to_string(const SourceLocation& where) {
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
}

std::string format_headline(const Diagnostic& diagnostic) {
  std::string text = diagnostic.where.file;
  if (diagnostic.where.line > 0) {
    text += ':' + std::to_string(diagnostic.where.line);
    if (diagnostic.where.column > 0) text += ':' + std::to_string(diagnostic.where.column);
  }
  text += diagnostic.severity == Severity::error ? ": error: " : ": warning: ";
  text += diagnostic.message;
  return text;
}

std::string format_with_source(const Diagnostic& diagnostic, std::string_view source) {
  std::string text = format_headline(diagnostic);
  if (diagnostic.where.line <= 0) return text;
  std::size_t begin = 0;
  for (int line = 1; line < diagnostic.where.line; ++line) {
    begin = source.find('\n', begin);
    if (begin == std::string_view::npos) return text;
    ++begin;
  }
  std::size_t end = source.find('\n', begin);
  std::string_view line = source.substr(begin, end == std::string_view::npos ? end : end - begin);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  text += "\n  ";
  text += line;
  if (diagnostic.where.column > 0) {
    text += "\n  ";
    // Keep tabs so the caret lines up under tab-indented source.
    for (int i = 0; i + 1 < diagnostic.where.column && i < static_cast<int>(line.size()); ++i)
      text += line[static_cast<std::size_t>(i)] == '\t' ? '\t' : ' ';
    text += '^';
  }
  return text;
}

bool has_errors(const std::vector<Diagnostic>& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::error; });
}

// Optimal string alignment distance: like Levenshtein, but a swap of two neighbouring
// letters ("dorp") counts as one typo, as people make them.
static std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  // Typos are in words people type: a long "word" gets no hint, which also keeps a
  // hostile multi-megabyte value from costing seconds of edit distances.
  constexpr std::size_t kLongestWord = 64;
  if (word.size() > kLongestWord) return {};
  std::string best;
  // One typo in short words, about one in three letters in longer ones.
  std::size_t best_distance = std::max<std::size_t>(1, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    std::size_t longer = std::max(word.size(), candidate.size());
    std::size_t shorter = std::min(word.size(), candidate.size());
    if (candidate.size() > kLongestWord || longer - shorter >= best_distance) continue;
    std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

}  // namespace portier
