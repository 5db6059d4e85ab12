#include "parse_policy.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>

#include "neighbours.h"
#include "policy_reader.h"

namespace portier {
namespace {

namespace fs = std::filesystem;

// Files larger than this are parsed in two halves on two threads when they can be.
constexpr std::size_t kSplitParseFrom = 256 * 1024;

// Where the second half of a long policy can start: a line that is exactly `[[rule]]`
// near the middle, after which every table header is `[[rule]]` too, in a file without
// multi-line strings (which could hold such a line). Parsed alone, that half is an
// array of rule tables that continues the first half's, as in the whole file. 0: none.
}  // namespace

std::size_t parse_split_point(std::string_view text) {
  if (text.size() < kSplitParseFrom || text.find("\"\"\"") != std::string_view::npos ||
      text.find("'''") != std::string_view::npos)
    return 0;
  constexpr std::string_view kHeader = "\n[[rule]]";
  const std::size_t split = text.find(kHeader, text.size() / 2);
  if (split == std::string_view::npos) return 0;
  for (std::size_t line = split + 1; line < text.size();) {
    std::size_t end = text.find('\n', line);
    if (end == std::string_view::npos) end = text.size();
    std::string_view content = text.substr(line, end - line);
    if (content.ends_with('\r')) content.remove_suffix(1);
    const std::size_t first = content.find_first_not_of(" \t");
    if (first != std::string_view::npos && content[first] == '[' && content != "[[rule]]") return 0;
    line = end + 1;
  }
  return split + 1;
}

namespace {

// Reads the two halves of a long main policy file at once: the second half is parsed and
// read on a thread of its own into a policy of its own, whose rules then follow the first
// half's (TOML parsing and reading are nearly all the time of reading a long policy).
// The second half is parsed behind as many empty lines as the first half has, so its
// nodes and diagnostics carry their lines in the file. False, with `policy` as it was,
// when either half does not parse: the caller then parses the whole text, for the
// diagnostics of the whole file.
bool read_halves(std::string_view text, std::size_t split, const std::string& file_name,
                 const SystemTables& tables, const FileReader& files, Policy& policy,
                 std::vector<Diagnostic>& diagnostics) {
  const std::string_view first_half = text.substr(0, split);
  std::string second_half(static_cast<std::size_t>(std::count(first_half.begin(), first_half.end(), '\n')), '\n');
  second_half += text.substr(split);

  // Parses and reads one half; false if it does not parse.
  auto read_half = [&](const std::string_view half, Policy& into, std::vector<Diagnostic>& found) {
    try {
      const toml::table document = toml::parse(half, file_name);
      PolicyReader reader(file_name, tables, files, false);
      reader.read_document(document, into);
      found = reader.take_diagnostics();
      return true;
    } catch (const toml::parse_error&) {
      return false;
    }
  };
  Policy second;
  std::vector<Diagnostic> second_diagnostics;
  bool second_parsed = false;
  std::exception_ptr second_failure;
  std::thread worker([&] {
    try {
      second_parsed = read_half(second_half, second, second_diagnostics);
    } catch (...) {
      second_failure = std::current_exception();
    }
  });
  const Policy before = policy;
  std::vector<Diagnostic> first_diagnostics;
  bool first_parsed = false;
  try {
    first_parsed = read_half(first_half, policy, first_diagnostics);
  } catch (...) {
    worker.join();
    throw;
  }
  worker.join();
  if (second_failure) std::rethrow_exception(second_failure);
  if (!first_parsed || !second_parsed) {
    policy = before;
    return false;
  }
  policy.rules.insert(policy.rules.end(), std::make_move_iterator(second.rules.begin()),
                      std::make_move_iterator(second.rules.end()));
  diagnostics.insert(diagnostics.end(), first_diagnostics.begin(), first_diagnostics.end());
  diagnostics.insert(diagnostics.end(), second_diagnostics.begin(), second_diagnostics.end());
  return true;
}

// Reads one file's text into `policy`; returns false when it could not be parsed at all.
bool read_file_into(std::string_view text, const std::string& file_name, const SystemTables& tables,
                    const FileReader& files, bool is_drop_in, Policy& policy,
                    std::vector<Diagnostic>& diagnostics) {
  if (const std::size_t split = is_drop_in ? 0 : parse_split_point(text);
      split != 0 && read_halves(text, split, file_name, tables, files, policy, diagnostics)) {
    policy.files.push_back(file_name);
    return true;
  }
  PolicyReader reader(file_name, tables, files, is_drop_in);
  toml::table document;
  try {
    document = toml::parse(text, file_name);
  } catch (const toml::parse_error& failure) {
    diagnostics.push_back(
        {Severity::error, reader.at(failure.source()), std::string(failure.description())});
    return false;
  }
  reader.read_document(document, policy);
  auto found = reader.take_diagnostics();
  diagnostics.insert(diagnostics.end(), found.begin(), found.end());
  policy.files.push_back(file_name);
  return true;
}

std::optional<std::string> read_text(const FileReader& files, const std::string& path,
                                     std::vector<Diagnostic>& diagnostics, std::string_view what) {
  std::string error;
  std::optional<std::string> text = files.read(path, error);
  if (!text) {
    // The message before the diagnostic: built inside the braced temporary, it makes GCC 12
    // at -O3 warn (falsely) that the temporary's file name may be destroyed uninitialized on
    // the path where building the message throws (-Wmaybe-uninitialized).
    std::string message = "cannot read " + std::string(what) + ": " + error;
    diagnostics.push_back(
        Diagnostic{Severity::error, SourceLocation{path, 0, 0}, std::move(message)});
  }
  return text;
}

void finish(ParsedPolicy& result) {
  if (!result.ok()) return;  // cross-checks on a half-read policy would only add noise
  add_neighbour_zones(result.policy);
  auto found = validate_policy(result.policy);
  result.diagnostics.insert(result.diagnostics.end(), found.begin(), found.end());
}

}  // namespace

std::string ParsedPolicy::report() const {
  std::string printed;
  for (const Diagnostic& diagnostic : diagnostics) {
    auto source = sources.find(diagnostic.where.file);
    printed += source == sources.end() ? format_headline(diagnostic)
                                       : format_with_source(diagnostic, source->second);
    printed += '\n';
  }
  return printed;
}

ParsedPolicy parse_policy(std::string_view text, const std::string& file_name,
                          const SystemTables& tables, const FileReader& files) {
  ParsedPolicy result;
  result.sources.emplace(file_name, std::string(text));
  result.policy.source = file_name;
  read_file_into(text, file_name, tables, files, false, result.policy, result.diagnostics);
  finish(result);
  return result;
}

ParsedPolicy parse_policy_fragment(std::string_view text, const std::string& file_name,
                                   const SystemTables& tables, const FileReader& files) {
  ParsedPolicy result;
  result.sources.emplace(file_name, std::string(text));
  result.policy.source = file_name;
  read_file_into(text, file_name, tables, files, true, result.policy, result.diagnostics);
  return result;
}

std::string drop_in_dir(const std::string& path) {
  fs::path p = path;
  return (p.parent_path() / (p.stem().string() + ".d")).string();
}

ParsedPolicy parse_policy_file(const std::string& path, const SystemTables& tables,
                               const FileReader& files) {
  ParsedPolicy result;
  result.policy.source = path;
  auto text = read_text(files, path, result.diagnostics, "policy");
  if (!text) return result;
  result.sources.emplace(path, *text);
  read_file_into(*text, path, tables, files, false, result.policy, result.diagnostics);

  std::vector<fs::path> drop_ins;
  for (const std::string& entry : files.list(drop_in_dir(path)))
    if (fs::path(entry).extension() == ".toml") drop_ins.push_back(entry);
  std::sort(drop_ins.begin(), drop_ins.end());
  for (const fs::path& drop_in : drop_ins) {
    auto drop_in_text = read_text(files, drop_in.string(), result.diagnostics, "drop-in");
    if (!drop_in_text) continue;
    result.sources.emplace(drop_in.string(), *drop_in_text);
    read_file_into(*drop_in_text, drop_in.string(), tables, files, true, result.policy,
                   result.diagnostics);
  }
  finish(result);
  return result;
}

}  // namespace portier
