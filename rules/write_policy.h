// Writing a policy model back as a self-contained TOML policy: the daemon keeps the
// last policy the kernel accepted this way, set files and drop-ins folded in, so a
// later start can load it even when the files it came from are broken or gone.
#pragma once

#include <string>

#include "policy.h"

namespace portier {

/// TOML text that parses back into the same policy (comments are not kept; runtime
/// toggles are not included unless applied to `policy` first).
std::string write_policy(const Policy& policy);

}  // namespace portier
