#include "parse_policy.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "policy_reader.h"

namespace portier {
namespace {

namespace fs = std::filesystem;

// Reads one file's text into `policy`; returns false when it could not be parsed at all.
bool read_file_into(std::string_view text, const std::string& file_name, const SystemTables& tables,
                    bool is_drop_in, Policy& policy, std::vector<Diagnostic>& diagnostics) {
  PolicyReader reader(file_name, tables, is_drop_in);
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

std::optional<std::string> read_text(const std::string& path, std::vector<Diagnostic>& diagnostics,
                                     std::string_view what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    diagnostics.push_back({Severity::error, {path, 0, 0},
                           "cannot read " + std::string(what) + ": " + std::strerror(errno)});
    return std::nullopt;
  }
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

void finish(ParsedPolicy& result) {
  if (!result.ok()) return;  // cross-checks on a half-read policy would only add noise
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
                          const SystemTables& tables) {
  ParsedPolicy result;
  result.sources.emplace(file_name, std::string(text));
  result.policy.source = file_name;
  read_file_into(text, file_name, tables, false, result.policy, result.diagnostics);
  finish(result);
  return result;
}

ParsedPolicy parse_policy_fragment(std::string_view text, const std::string& file_name,
                                   const SystemTables& tables) {
  ParsedPolicy result;
  result.sources.emplace(file_name, std::string(text));
  result.policy.source = file_name;
  read_file_into(text, file_name, tables, true, result.policy, result.diagnostics);
  return result;
}

std::string drop_in_dir(const std::string& path) {
  fs::path p = path;
  return (p.parent_path() / (p.stem().string() + ".d")).string();
}

ParsedPolicy parse_policy_file(const std::string& path, const SystemTables& tables) {
  ParsedPolicy result;
  result.policy.source = path;
  auto text = read_text(path, result.diagnostics, "policy");
  if (!text) return result;
  result.sources.emplace(path, *text);
  read_file_into(*text, path, tables, false, result.policy, result.diagnostics);

  std::vector<fs::path> drop_ins;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(drop_in_dir(path), ec))
    if (entry.path().extension() == ".toml") drop_ins.push_back(entry.path());
  std::sort(drop_ins.begin(), drop_ins.end());
  for (const fs::path& drop_in : drop_ins) {
    auto drop_in_text = read_text(drop_in.string(), result.diagnostics, "drop-in");
    if (!drop_in_text) continue;
    result.sources.emplace(drop_in.string(), *drop_in_text);
    read_file_into(*drop_in_text, drop_in.string(), tables, true, result.policy,
                   result.diagnostics);
  }
  finish(result);
  return result;
}

}  // namespace portier
