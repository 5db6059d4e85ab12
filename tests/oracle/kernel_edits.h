// The parts of portier_oracle that exercise NetlinkKernel's small changes: edit(),
// edit_set() and the event socket (tests/integration/test_kernel_edits.sh).
#pragma once

#include <string>
#include <vector>

namespace portier::oracle {

/// `portier_oracle edits DIR`: the scenario of test_kernel_edits.sh, run on one
/// NetlinkKernel; writes what the script compares into DIR. Returns the exit status.
int run_edits(const std::string& dir);

/// `portier_oracle watch`: prints what a plain NFNLGRP_NFTABLES subscriber sees of one
/// apply() of ours and of one `nft add rule` by another process.
int run_watch();

/// `portier_oracle time-edits [SIZES...]`: apply with and without echoed handles, edit()
/// and edit_set() latencies. Returns the exit status.
int run_time_edits(const std::vector<std::string>& args);

}  // namespace portier::oracle
