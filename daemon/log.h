// portierd's log: lines on stderr, which systemd's journal keeps with the unit.
#pragma once

#include <string_view>

namespace portier {

/// Writes `portierd: <message>` and a newline, in one write.
void log_line(std::string_view message);

}  // namespace portier
