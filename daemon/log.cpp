#include "log.h"

#include <cstdio>
#include <string>

namespace portier {

void log_line(std::string_view message) {
  std::string line = "portierd: ";
  line += message;
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace portier
