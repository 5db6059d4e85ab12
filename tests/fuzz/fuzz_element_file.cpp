// `portierctl set add|del NAME --file FILE`: the element lines, read and checked before
// anything is sent to portierd.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "element_file.h"
#include "fuzz_support.h"

using namespace portier;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  const cli::ElementFile file = cli::read_element_file(in, "fuzz.txt");
  if (file.elements.size() != file.lines.size()) fuzz::fail("an element without its line number");
  // At most ten errors and a line counting the rest.
  if (file.errors.size() > 11) fuzz::fail(std::to_string(file.errors.size()) + " error lines");
  if (file.errors.empty() && !file.elements.empty() && file.family != "ipv4" &&
      file.family != "ipv6" && file.family != "port") {
    fuzz::fail("elements of family '" + file.family + "'");
  }
  return 0;
}
