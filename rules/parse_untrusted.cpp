#include "parse_untrusted.h"

#include <toml++/toml.h>

namespace portier {

// Check parses text from any caller, and portierd runs as root: a set's `file` would be read
// as root and its lines quoted back as "not a valid element" (the first lines of
// /etc/shadow), or /dev/zero read until memory runs out. So a check over the bus reads no
// file: a text naming one gets this error alone, and is not parsed further (parse_policy
// could read it from half of a text whose other half is broken).
ParsedPolicy parse_untrusted_policy(const std::string& text, const std::string& file_name,
                                    const SystemTables& tables) {
  ParsedPolicy refused;
  refused.sources.emplace(file_name, text);
  toml::table document;
  try {
    document = toml::parse(text, file_name);
  } catch (const toml::parse_error& failure) {
    const toml::source_position& at = failure.source().begin;
    refused.diagnostics.push_back(
        {Severity::error,
         {file_name, static_cast<int>(at.line), static_cast<int>(at.column)},
         std::string(failure.description())});
    return refused;
  }
  if (const toml::table* sets = document["set"].as_table()) {
    for (const auto& entry : *sets) {
      const toml::table* set = entry.second.as_table();
      const toml::node* file = set ? set->get("file") : nullptr;
      if (!file) continue;
      const toml::source_position& at = file->source().begin;
      refused.diagnostics.push_back(
          {Severity::error,
           {file_name, static_cast<int>(at.line), static_cast<int>(at.column)},
           "set files are not read in a check sent to portierd (it would read them as root for "
           "anyone); check the policy file itself: portierctl check FILE"});
      return refused;
    }
  }
  return parse_policy(text, file_name, tables);
}

}  // namespace portier
