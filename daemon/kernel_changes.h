// The port through which the daemon notices that others changed nf_tables (for drift
// repair): NetlinkChanges listens on the kernel's notification group, tests use a fake.
// Apart from Kernel because only the main loop waits on it, and a Kernel that is only
// asked to load and edit needs no second socket.
#pragma once

#include <string>

namespace portier {

class KernelChanges {
 public:
  /// A descriptor that becomes readable when nf_tables objects change anywhere in this
  /// network namespace (-1 if not supported), for the main loop to wait on.
  virtual int fd() = 0;
  /// Reads the pending change notifications; true when one touched `table inet <table>`
  /// and did not come from the daemon's own transactions.
  virtual bool changed_by_others(const std::string& table) = 0;
  virtual ~KernelChanges() = default;
};

}  // namespace portier
