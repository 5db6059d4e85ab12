// Parsing a policy text that anyone may send (portierd's Check method), for a daemon
// that runs as root.
#pragma once

#include <string>

#include "parse_policy.h"

namespace portier {

/// parse_policy(), but a text that names a set file gets one error saying so and is not
/// parsed further: no file is read for it.
ParsedPolicy parse_untrusted_policy(const std::string& text, const std::string& file_name,
                                    const SystemTables& tables);

}  // namespace portier
