// The C library's heap, seen from a daemon that runs for months.
#pragma once

namespace portier {

/// Gives the freed heap that malloc keeps back to the system. Parsing, compiling and
/// encoding a big policy leave megabytes of it behind.
void trim_heap();

}  // namespace portier
