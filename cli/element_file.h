// Set elements from a file for `portierctl set add|del NAME --file FILE`, in the format of
// a policy set file: one element a line, '#' comments, blank lines ignored.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

namespace portier::cli {

struct ElementFile {
  std::vector<std::string> elements;
  std::vector<std::uint32_t> lines;  // the line number of each element, for messages
  /// `FILE:LINE:COL: error: ...`, at most ten, then one line counting the rest.
  std::vector<std::string> errors;
  /// What the elements are: ipv4, ipv6 or port (the names of set families); empty if none.
  std::string family;
};

/// Reads and checks every line before anything is sent: each element must be an IPv4 or
/// IPv6 address or network, or a port, and all of one kind, as a set has one family.
/// `name` is what messages call the file.
ElementFile read_element_file(std::istream& in, std::string_view name);

}  // namespace portier::cli
