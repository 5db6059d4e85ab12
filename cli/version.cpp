#include <cstdio>

#include "commands.h"

namespace portier::cli {

int version(Args args) {
  if (!args.empty()) return usage_error("version", "takes no arguments");
  std::printf("portierctl %s\n", PORTIER_VERSION);
  return kOk;
}

}  // namespace portier::cli
