// How portierctl prints: aligned tables, human-readable numbers, colour only on a
// terminal (and never with NO_COLOR), and JSON for scripts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portier::cli {

/// True when stdout is a terminal: numbers get shortened and colour may be used.
bool stdout_is_terminal();
/// Colour on a terminal unless NO_COLOR is set (https://no-color.org).
bool use_colour();

/// 1234 -> "1.2k", 3400000 -> "3.4M"; below 1000 as is.
std::string human_count(std::uint64_t count);
/// 3565158 -> "3.4 MiB"; below 1024 "N B".
std::string human_bytes(std::uint64_t bytes);

/// `text` in an ANSI colour (when use_colour()): green, red, yellow or bold.
std::string coloured(std::string_view text, std::string_view colour);

/// Prints rows with columns padded to the widest cell; the first row is the header.
/// Colour codes in cells do not count towards the width.
void print_table(const std::vector<std::vector<std::string>>& rows);

/// A JSON string literal, quotes included.
std::string json_string(std::string_view text);

/// Builds one JSON value with commas in the right places; no pretty-printing.
class Json {
 public:
  Json& begin_object();
  Json& end_object();
  Json& begin_array();
  Json& end_array();
  Json& key(std::string_view name);
  Json& value(std::string_view text);
  Json& value(const char* text) { return value(std::string_view(text)); }
  Json& value(std::uint64_t number);
  Json& value(bool flag);
  Json& values(const std::vector<std::string>& texts);
  const std::string& str() const { return text_; }

 private:
  void separate();
  std::string text_;
  bool need_comma_ = false;
};

}  // namespace portier::cli
