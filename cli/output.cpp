#include "output.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace portier::cli {
namespace {

std::string one_decimal(double value, const char* unit) {
  char text[32];
  // 9.96 rounds to "10", which needs no decimal.
  std::snprintf(text, sizeof text, value < 9.95 ? "%.1f%s" : "%.0f%s", value, unit);
  return text;
}

std::size_t visible_width(std::string_view cell) {
  std::size_t width = 0;
  for (std::size_t i = 0; i < cell.size(); ++i) {
    if (cell[i] == '\033') {  // skip an SGR sequence: ESC [ ... m
      while (i < cell.size() && cell[i] != 'm') ++i;
      continue;
    }
    if ((static_cast<unsigned char>(cell[i]) & 0xC0) != 0x80) ++width;  // UTF-8 lead bytes
  }
  return width;
}

}  // namespace

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

bool use_colour() {
  const char* no_colour = std::getenv("NO_COLOR");
  return stdout_is_terminal() && (no_colour == nullptr || *no_colour == '\0');
}

std::string human_count(std::uint64_t count) {
  if (count < 1000) return std::to_string(count);
  static const char* const kUnits[] = {"k", "M", "G", "T"};
  double value = static_cast<double>(count) / 1e3;
  int unit = 0;
  // Up a unit once the value would print as 1000: 999,999 is "1.0M", not "1000k".
  while (value >= 999.5 && unit < 3) {
    value /= 1e3;
    ++unit;
  }
  return one_decimal(value, kUnits[unit]);
}

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static const char* const kUnits[] = {" KiB", " MiB", " GiB", " TiB"};
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1023.5 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  return one_decimal(value, kUnits[unit]);
}

std::string coloured(std::string_view text, std::string_view colour) {
  if (!use_colour()) return std::string(text);
  const char* code = colour == "green" ? "32" : colour == "red" ? "31" : colour == "yellow" ? "33" : "1";
  return "\033[" + std::string(code) + "m" + std::string(text) + "\033[0m";
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], visible_width(row[c]));
  }
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (std::size_t c = 0; c < rows[r].size(); ++c) {
      std::string cell = r == 0 ? coloured(rows[r][c], "bold") : rows[r][c];
      line += cell;
      if (c + 1 < rows[r].size()) line += std::string(widths[c] - visible_width(rows[r][c]) + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

void Json::separate() {
  if (need_comma_) text_ += ',';
  need_comma_ = true;
}

Json& Json::begin_object() {
  separate();
  text_ += '{';
  need_comma_ = false;
  return *this;
}
Json& Json::end_object() {
  text_ += '}';
  need_comma_ = true;
  return *this;
}
Json& Json::begin_array() {
  separate();
  text_ += '[';
  need_comma_ = false;
  return *this;
}
Json& Json::end_array() {
  text_ += ']';
  need_comma_ = true;
  return *this;
}
Json& Json::key(std::string_view name) {
  separate();
  text_ += json_string(name) + ":";
  need_comma_ = false;
  return *this;
}
Json& Json::value(std::string_view text) {
  separate();
  text_ += json_string(text);
  return *this;
}
Json& Json::value(std::uint64_t number) {
  separate();
  text_ += std::to_string(number);
  return *this;
}
Json& Json::value(bool flag) {
  separate();
  text_ += flag ? "true" : "false";
  return *this;
}
Json& Json::values(const std::vector<std::string>& texts) {
  begin_array();
  for (const std::string& text : texts) value(text);
  return end_array();
}

}  // namespace portier::cli
