#include "parse_policy.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "neighbours.h"
#include "policy_reader.h"

namespace portier {
namespace {

namespace fs = std::filesystem;

// Files larger than this are parsed in two halves on two threads when they can be.
constexpr std::size_t kSplitParseFrom = 256 * 1024;

// A `[[rule]]` line of the rule tail: where it starts in the text, and its line number.
struct RuleStart {
  std::size_t offset;
  int line;
};

// The `[[rule]]` lines of the text's rule tail: from the first `[[rule]]` line after which
// every line that could open a table (its first non-blank character is '[') is exactly
// `[[rule]]`. Lines of a multi-line array that start with '[' end the tail too, which
// only makes it shorter. Empty if there is none, or if the text has a multi-line string
// (which could hold such lines).
std::vector<RuleStart> rule_tail(std::string_view text) {
  std::vector<RuleStart> starts;
  if (text.find("\"\"\"") != std::string_view::npos || text.find("'''") != std::string_view::npos)
    return starts;
  int number = 1;
  for (std::size_t line = 0; line < text.size(); ++number) {
    std::size_t end = text.find('\n', line);
    if (end == std::string_view::npos) end = text.size();
    std::string_view content = text.substr(line, end - line);
    if (content.ends_with('\r')) content.remove_suffix(1);
    const std::size_t first = content.find_first_not_of(" \t");
    if (first != std::string_view::npos && content[first] == '[') {
      if (content == "[[rule]]")
        starts.push_back({line, number});
      else
        starts.clear();
    }
    line = end + 1;
  }
  return starts;
}

}  // namespace

// Where the second half of a long policy can start: the rule tail's first `[[rule]]` line
// past the middle. Parsed alone, that half is an array of rule tables that continues the
// first half's, as in the whole file. 0: none.
std::size_t parse_split_point(std::string_view text) {
  if (text.size() < kSplitParseFrom) return 0;
  for (const RuleStart& start : rule_tail(text))
    if (start.offset > text.size() / 2) return start.offset;
  return 0;
}

namespace {

// Runs `there` on a thread of its own while `here` runs on this one, and rethrows what
// either threw once both are done (`here`'s first).
template <typename Here, typename There>
void run_both(Here&& here, There&& there) {
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      there();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  try {
    here();
  } catch (...) {
    worker.join();
    throw;
  }
  worker.join();
  if (failure) std::rethrow_exception(failure);
}

// Runs `each(i)` for i in [0, count), on two threads when there are many.
template <typename Each>
void on_two_threads(std::size_t count, Each&& each) {
  constexpr std::size_t kThreadFrom = 512;  // below this a thread costs more than it saves
  const std::size_t half = count < kThreadFrom ? count : count / 2;
  auto run = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) each(i);
  };
  if (half == count)
    run(0, count);
  else
    run_both([&] { run(0, half); }, [&] { run(half, count); });
}

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
  const Policy before = policy;
  std::vector<Diagnostic> first_diagnostics;
  bool first_parsed = false;
  run_both([&] { first_parsed = read_half(first_half, policy, first_diagnostics); },
           [&] { second_parsed = read_half(second_half, second, second_diagnostics); });
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
                    std::vector<Diagnostic>& diagnostics, PolicyReadCache* cache = nullptr) {
  if (cache && !is_drop_in && cache->read(text, file_name, tables, files, policy, diagnostics)) {
    policy.files.push_back(file_name);
    return true;
  }
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

// The places of a rule or diagnostic read from a part of the file alone (its first line 1),
// moved down `by` lines to where that part is in the file.
void move_lines(SourceLocation& where, int by) {
  if (where.line > 0) where.line += by;
}

void move_lines(Rule& rule, int by) {
  move_lines(rule.where, by);
  for (Endpoint& endpoint : rule.from) move_lines(endpoint.where, by);
  for (Endpoint& endpoint : rule.to) move_lines(endpoint.where, by);
}

void name_file(Rule& rule, const std::string& file_name) {
  rule.where.file = file_name;
  for (Endpoint& endpoint : rule.from) endpoint.where.file = file_name;
  for (Endpoint& endpoint : rule.to) endpoint.where.file = file_name;
}

}  // namespace

bool PolicyReadCache::read(std::string_view text, const std::string& file_name,
                           const SystemTables& tables, const FileReader& files, Policy& policy,
                           std::vector<Diagnostic>& diagnostics) {
  const std::vector<RuleStart> starts = rule_tail(text);
  if (starts.empty()) return false;
  if (file_name != file_name_ || &tables != tables_) {
    blocks_.clear();
    file_name_ = file_name;
    tables_ = &tables;
  }
  auto block_text = [&](std::size_t i) {
    const std::size_t end = i + 1 < starts.size() ? starts[i + 1].offset : text.size();
    return text.substr(starts[i].offset, end - starts[i].offset);
  };

  // The head is parsed with the tail's first rule: together they parse as they do in the
  // whole file only if `rule` is an array that `[[rule]]` tables extend (not `rule = [...]`),
  // and every later rule then parses alone as it does there.
  toml::table head;
  try {
    head =
        toml::parse(text.substr(0, starts.size() > 1 ? starts[1].offset : text.size()), file_name);
  } catch (const toml::parse_error&) {
    return false;
  }

  // Each later rule: kept, or new (each distinct new text parsed once). `first`: the first
  // rule with its text, which carries the kept block over to the next cache.
  struct Part {
    Blocks::iterator kept;
    std::size_t fresh = 0;  // index in new_texts, when not kept
    bool first = false;
  };
  ++reads_;
  std::vector<Part> parts(starts.size());
  std::vector<std::string_view> new_texts;
  std::unordered_map<std::string_view, std::size_t> new_index;
  for (std::size_t i = 1; i < starts.size(); ++i) {
    const std::string_view part = block_text(i);
    Part& at = parts[i];
    at.kept = blocks_.find(part);
    if (at.kept != blocks_.end()) {
      at.first = at.kept->second.read != reads_;
      at.kept->second.read = reads_;
    } else {
      auto [index, added] = new_index.try_emplace(part, new_texts.size());
      if (added) new_texts.push_back(part);
      at.fresh = index->second;
      at.first = added;
    }
  }
  std::vector<Block> new_blocks(new_texts.size());
  std::vector<char> parsed(new_texts.size(), 0);
  on_two_threads(new_texts.size(), [&](std::size_t i) {
    toml::table document;
    try {
      document = toml::parse(new_texts[i], file_name);
    } catch (const toml::parse_error&) {
      return;
    }
    PolicyReader reader(file_name, tables, files, false);
    Policy alone;
    reader.read_rule(*document.get("rule")->as_array()->get(0)->as_table(), alone);
    new_blocks[i].rules = std::move(alone.rules);
    new_blocks[i].diagnostics = reader.take_diagnostics();
    for (Rule& rule : new_blocks[i].rules) name_file(rule, {});
    for (Diagnostic& diagnostic : new_blocks[i].diagnostics) diagnostic.where.file.clear();
    parsed[i] = 1;
  });
  if (std::find(parsed.begin(), parsed.end(), 0) != parsed.end()) return false;
  auto block_of = [&](const Part& part) -> const Block& {
    return part.kept != blocks_.end() ? part.kept->second : new_blocks[part.fresh];
  };

  PolicyReader reader(file_name, tables, files, false);
  reader.read_document(head, policy, [&] {
    policy.rules.reserve(policy.rules.size() + starts.size() - 1);
    for (std::size_t i = 1; i < starts.size(); ++i) {
      const int by = starts[i].line - 1;
      const Block& block = block_of(parts[i]);
      for (const Rule& kept : block.rules) {
        Rule& rule = policy.rules.emplace_back(kept);
        name_file(rule, file_name);
        move_lines(rule, by);
      }
      for (Diagnostic diagnostic : block.diagnostics) {
        diagnostic.where.file = file_name;
        move_lines(diagnostic.where, by);
        reader.add(std::move(diagnostic));
      }
    }
  });
  auto found_here = reader.take_diagnostics();
  diagnostics.insert(diagnostics.end(), found_here.begin(), found_here.end());

  // Keep this read's rules only.
  Blocks next;
  next.reserve(starts.size());
  for (std::size_t i = 1; i < starts.size(); ++i) {
    if (!parts[i].first) continue;
    if (parts[i].kept != blocks_.end())
      next.insert(blocks_.extract(parts[i].kept));
    else
      next.emplace(std::string(block_text(i)), std::move(new_blocks[parts[i].fresh]));
  }
  blocks_ = std::move(next);
  return true;
}

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
                          const SystemTables& tables, const FileReader& files,
                          PolicyReadCache* cache) {
  ParsedPolicy result;
  result.sources.emplace(file_name, std::string(text));
  result.policy.source = file_name;
  read_file_into(text, file_name, tables, files, false, result.policy, result.diagnostics, cache);
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
                               const FileReader& files, PolicyReadCache* cache) {
  ParsedPolicy result;
  result.policy.source = path;
  auto text = read_text(files, path, result.diagnostics, "policy");
  if (!text) return result;
  // Read from the kept source, not a copy of it (a 10,000-rule policy is a megabyte).
  const std::string& source = result.sources.emplace(path, std::move(*text)).first->second;
  read_file_into(source, path, tables, files, false, result.policy, result.diagnostics, cache);

  std::vector<fs::path> drop_ins;
  for (const std::string& entry : files.list(drop_in_dir(path)))
    if (fs::path(entry).extension() == ".toml") drop_ins.push_back(entry);
  std::sort(drop_ins.begin(), drop_ins.end());
  for (const fs::path& drop_in : drop_ins) {
    auto drop_in_text = read_text(files, drop_in.string(), result.diagnostics, "drop-in");
    if (!drop_in_text) continue;
    // try_emplace leaves the text where it is if the name is there already.
    auto [kept, added] = result.sources.try_emplace(drop_in.string(), std::move(*drop_in_text));
    read_file_into(added ? kept->second : *drop_in_text, drop_in.string(), tables, files, true,
                   result.policy, result.diagnostics);
  }
  finish(result);
  return result;
}

}  // namespace portier
