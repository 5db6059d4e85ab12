// What the fuzz targets share: the golden service and user tables (the same on every
// machine, so a reproducer means the same everywhere) and a failure that libFuzzer
// reports as a crash, with the input saved.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "services.h"

namespace portier::fuzz {

inline const SystemTables& golden_tables() {
  static const SystemTables tables{ServiceTable::load(PORTIER_GOLDEN_DIR "/services"),
                                   UserTable::load(PORTIER_GOLDEN_DIR "/passwd")};
  return tables;
}

/// A broken property: printed, then abort(), which libFuzzer turns into a crash report.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz: property broken: %s\n", what.c_str());
  std::abort();
}

}  // namespace portier::fuzz
