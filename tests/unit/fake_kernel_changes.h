// The kernel's change notifications for unit tests: the test says who committed what, and
// changed_by_others() reads it once, as NetlinkChanges drains its socket.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kernel_changes.h"

namespace portier::testing {

class FakeKernelChanges final : public KernelChanges {
 public:
  /// Another process committed a transaction that touched `table inet TABLE`.
  void committed_by_others(std::string table) { pending.push_back(std::move(table)); }

  // Nothing to wait on: a test runs the drift step itself.
  int fd() override { return -1; }
  bool changed_by_others(const std::string& table) override {
    asked.push_back(table);
    bool changed = lost;
    for (const std::string& touched : pending) changed = changed || touched == table;
    pending.clear();
    lost = false;
    return changed;
  }

  std::vector<std::string> pending;  // tables others changed, not yet read
  /// Notifications were lost (receive buffer overflow): NetlinkChanges counts that as a
  /// change by others, whatever table they were about.
  bool lost = false;
  std::vector<std::string> asked;  // the tables changed_by_others() was asked about
};

}  // namespace portier::testing
