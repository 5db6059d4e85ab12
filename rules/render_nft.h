// Prints the ruleset IR as nft text: what `nft -f` loads and, match for match, what
// `nft list table inet NAME` prints back, so a golden file reads like the kernel's view.
#pragma once

#include <string>

#include "ruleset.h"

namespace portier {

/// The `table inet NAME { ... }` block. Throws std::invalid_argument for an IR nft could
/// not express (a name nft would not parse, a port match without a protocol match).
/// Differences from `nft list` of the loaded table: elements of hash sets in IR order
/// (nft prints kernel order), element lists on one line, no `persist` flag (nft 1.0.6
/// cannot write it, docs/nftables-owner.md), and a protocol match kept where nft's listing
/// drops it as implied (`meta l4proto tcp ct state new tcp flags syn`).
std::string render_nft(const ir::Ruleset& ruleset);

/// render_nft() preceded by `table inet NAME` / `delete table inet NAME`: loaded with
/// `nft -f`, it creates the table if missing, drops it and fills it anew in one
/// transaction, so the old table stays in place if anything in the new one is refused.
std::string render_nft_replace(const ir::Ruleset& ruleset);

}  // namespace portier
