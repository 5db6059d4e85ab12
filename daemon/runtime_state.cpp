#include "runtime_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "parse_policy.h"

namespace portier {
namespace {

// Milliseconds since the epoch: whole seconds would end a timed rule up to a second early
// after a restart.
std::int64_t to_millis(Clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

Clock::time_point from_millis(std::int64_t millis) {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(millis)));
}

toml::array elements_of(const std::vector<RuntimeElement>& elements) {
  toml::array array;
  for (const RuntimeElement& element : elements) {
    toml::table table{{"set", element.set}, {"element", element.element}};
    if (element.expires) table.insert("expires_ms", to_millis(*element.expires));
    array.push_back(std::move(table));
  }
  return array;
}

std::vector<RuntimeElement> read_elements(const toml::table& document, std::string_view key) {
  std::vector<RuntimeElement> elements;
  if (const toml::array* array = document[key].as_array()) {
    for (const toml::node& node : *array) {
      const toml::table& table = *node.as_table();
      RuntimeElement element{table["set"].value_or(std::string()), table["element"].value_or(std::string()),
                             std::nullopt};
      if (auto expires = table["expires_ms"].value<std::int64_t>()) element.expires = from_millis(*expires);
      elements.push_back(std::move(element));
    }
  }
  return elements;
}

void check(bool condition, const std::string& file_name, const std::string& what) {
  if (!condition) throw std::runtime_error(file_name + ": " + what);
}

}  // namespace

std::string write_runtime_state(const RuntimeState& state) {
  toml::table document;
  toml::table toggles;
  for (const auto& [name, enabled] : state.toggles) toggles.insert(name, enabled);
  document.insert("toggles", std::move(toggles));
  document.insert("next_timed_id", static_cast<std::int64_t>(state.next_timed_id));
  document.insert("panic", state.panic);
  document.insert("panic_keep_established", state.panic_keep_established);
  // A timed rule is kept as policy text, so the policy parser reads it back.
  toml::array timed;
  for (const TimedRule& rule : state.timed_rules)
    timed.push_back(toml::table{{"expires_ms", to_millis(rule.expires)}, {"policy", rule.text}});
  document.insert("timed_rule", std::move(timed));
  document.insert("added_element", elements_of(state.added_elements));
  document.insert("removed_element", elements_of(state.removed_elements));
  std::ostringstream out;
  out << "# portierd runtime state: changes made at run time on top of the policy.\n"
      << toml::toml_formatter{document} << "\n";
  return out.str();
}

RuntimeState read_runtime_state(const std::string& text, const std::string& file_name,
                                const SystemTables& tables) {
  toml::table document;
  try {
    document = toml::parse(text, file_name);
  } catch (const toml::parse_error& failure) {
    throw std::runtime_error(file_name + ": " + std::string(failure.description()));
  }
  RuntimeState state;
  if (const toml::table* toggles = document["toggles"].as_table())
    for (auto&& [name, value] : *toggles) {
      check(value.is_boolean(), file_name, "toggle '" + std::string(name.str()) + "' is not a boolean");
      state.toggles[std::string(name.str())] = *value.value<bool>();
    }
  state.next_timed_id = static_cast<std::uint64_t>(document["next_timed_id"].value_or(std::int64_t{1}));
  state.panic = document["panic"].value_or(false);
  state.panic_keep_established = document["panic_keep_established"].value_or(false);
  if (const toml::array* timed = document["timed_rule"].as_array()) {
    for (const toml::node& node : *timed) {
      const toml::table* table = node.as_table();
      check(table, file_name, "timed_rule entries must be tables");
      auto expires = (*table)["expires_ms"].value<std::int64_t>();
      auto policy_text = (*table)["policy"].value<std::string>();
      check(expires && policy_text, file_name, "a timed_rule needs expires_ms and policy");
      ParsedPolicy parsed = parse_policy_fragment(*policy_text, file_name + " (timed rule)", tables);
      check(parsed.ok() && parsed.policy.rules.size() == 1, file_name, "bad timed rule: " + parsed.report());
      state.timed_rules.push_back({parsed.policy.rules[0], *policy_text, from_millis(*expires)});
    }
  }
  state.added_elements = read_elements(document, "added_element");
  state.removed_elements = read_elements(document, "removed_element");
  return state;
}

std::optional<std::string> read_text_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return std::nullopt;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

void write_file_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, text, {});
}

void write_file_atomically(const std::string& path, const std::string& text,
                           const std::function<void()>& before_rename) {
  std::filesystem::path final_path = path;
  std::filesystem::path temp_path = final_path;
  temp_path += ".tmp";
  // Whatever fails, the old file stays as it was and no half-written temporary is left
  // beside it (on a full disk, it would hold the space the next try needs).
  auto fail = [&](int error, const std::string& what) {
    ::unlink(temp_path.c_str());
    throw std::system_error(error, std::generic_category(), what);
  };
  // An existing file keeps its permissions (a policy file may be world-readable).
  struct stat existing {};
  mode_t mode = ::stat(final_path.c_str(), &existing) == 0 ? (existing.st_mode & 07777) : 0600;
  int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) fail(errno, "cannot write " + temp_path.string());
  ::fchmod(fd, mode);
  std::size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      fail(saved, "cannot write " + temp_path.string());
    }
    written += static_cast<std::size_t>(n);
  }
  // Space is only taken at writeback on some file systems: fsync is where a full disk
  // shows, and a close after it may report it too.
  if (::fsync(fd) != 0) {
    int saved = errno;
    ::close(fd);
    fail(saved, "cannot write " + temp_path.string());
  }
  if (::close(fd) != 0) fail(errno, "cannot write " + temp_path.string());
  if (before_rename) {
    try {
      before_rename();
    } catch (...) {
      ::unlink(temp_path.c_str());
      throw;
    }
  }
  if (::rename(temp_path.c_str(), final_path.c_str()) != 0)
    fail(errno, "cannot rename " + temp_path.string() + " to " + final_path.string());
  // The rename is only durable once the folder's entry is on disk too.
  std::string folder = final_path.parent_path().empty() ? "." : final_path.parent_path().string();
  int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) throw std::system_error(errno, std::generic_category(), "cannot open " + folder);
  if (::fsync(dir) != 0) {
    int saved = errno;
    ::close(dir);
    throw std::system_error(saved, std::generic_category(), "cannot sync " + folder);
  }
  ::close(dir);
}

}  // namespace portier
