// What the kernel holds of portier's table, and how to edit it. The ruleset is kept as
// compiled with every rule enabled (full()), with the rules left out of the kernel
// (disabled()), so that a toggle only adds or removes kernel rules: for that it keeps
// the kernel's handle of each loaded rule, where each policy rule's kernel rules and
// merged-map elements are, and the kernel's order of each map's elements.
//
// It does not talk to the kernel. Firewall asks it for the TableEdit or SetEdits of a
// change, sends them, and once the kernel took them tells it so (made(), set_edited());
// a refused edit leaves the record as it was, like the kernel's table.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernel.h"
#include "policy.h"
#include "ruleset.h"
#include "set_elements.h"

namespace portier {

/// Names of policy rules (and forwards), as rule_owner() gives them.
using RuleNames = std::set<std::string, std::less<>>;

class LoadedTable {
 public:
  /// One kernel rule of full(): chains[chain].rules[rule].
  struct RulePosition {
    std::size_t chain;
    std::size_t rule;
  };
  /// A change of which rules are in force, as the edit of the loaded table that makes it.
  struct Change {
    TableEdit edit;
    std::vector<RulePosition> inserted;  // in the order of edit.inserts
    std::vector<RulePosition> removed;
    // The rules left out once it is made: all of them anew, or one rule turned on or off.
    std::optional<RuleNames> disabled;
    std::optional<std::pair<std::string, bool>> toggled;
    /// Nothing to send to the kernel (the rule has no kernel rules, or is as asked).
    bool sends_nothing() const {
      return edit.removes.empty() && edit.inserts.empty() && edit.maps.empty();
    }
  };

  /// Whether the kernel has what load() recorded (false at first, and after forget()).
  bool loaded() const { return loaded_; }
  /// The kernel's table is no longer known to be what is recorded: the next load is whole.
  void forget() { loaded_ = false; }
  /// Whether the kernel has `full` (compiled with every rule enabled) already, whatever
  /// rules are left out of it.
  bool holds(const ir::Ruleset& full);

  /// The kernel now has `full` without the rules of `disabled`; `handles` are those
  /// Kernel::apply() gave for the rules loaded.
  void load(ir::Ruleset full, RuleNames disabled, const RuleHandles& handles);

  /// The ruleset with every rule enabled. Its named sets may still hold elements removed
  /// at run time (set_edited()) until take_out_removed(): use ruleset() for what the
  /// kernel has.
  const ir::Ruleset& full() const { return full_; }
  const RuleNames& disabled() const { return disabled_; }
  const std::string& table() const { return full_.table; }
  /// What the kernel has, as IR: rules, set elements and map elements in its order.
  ir::Ruleset ruleset() const;

  /// The edit that leaves out exactly the rules of `disabled`: the kernel rules that go
  /// out are deleted by handle, those that come in are inserted after the nearest rule
  /// before them that stays.
  Change leave_out(RuleNames disabled) const;
  /// The same for one rule's kernel rules alone. Nothing here walks the whole ruleset,
  /// so a toggle costs the same at 10 rules and at 10,000.
  Change toggle(const std::string& name, bool enabled) const;
  /// The kernel made `change`; `handles` are those of its inserted rules (Kernel::edit()).
  void made(Change change, const std::vector<std::uint64_t>& handles);

  /// The edits of the kernel's sets that add and remove these elements (as users write
  /// them, each fitting) of the policy's `set`, in kernel set name order; none when a
  /// kernel set they need is not loaded.
  std::optional<std::vector<SetEdit>> set_edits(const NamedSet& set,
                                                const std::vector<std::string>& add,
                                                const std::vector<std::string>& remove,
                                                std::optional<std::chrono::seconds> timeout) const;
  /// The kernel made `edit` of one of its sets.
  void set_edited(const SetEdit& edit);
  /// The kernel's set `set` (of a bind or `unit =` rule) now holds `members`.
  void set_cgroups(const std::string& set, const std::vector<ir::CgroupMember>& members);
  /// Takes the elements removed at run time out of full()'s sets.
  void take_out_removed();

 private:
  struct ElementPosition {
    std::size_t map;
    std::size_t element;
  };
  /// Adds to `edit` the map elements that go in or out for a rule to be (not) in force.
  void edit_elements(const std::vector<ElementPosition>& elements, bool enabled,
                     TableEdit& edit) const;
  void take_out_removed(ir::NamedSet& set) const;

  bool loaded_ = false;
  // What the kernel has: full_ without the rules of disabled_, each present rule's
  // handle in handles_ (0 for the left-out ones).
  ir::Ruleset full_;
  RuleNames disabled_;
  RuleHandles handles_;
  // Elements removed at run time from a set of full_ (by kernel set name), still in its
  // elements: finding one element in a vector of a million is a scan, so removed ones are
  // only marked, and taken out together before full_ is used whole.
  std::map<std::string, RangeSet, std::less<>> removed_elements_;
  // Where each policy rule's kernel rules are in full_, in chain order, and its elements
  // of full_'s RuleMaps (merged rules).
  std::unordered_map<std::string, std::vector<RulePosition>> positions_;
  std::unordered_map<std::string, std::vector<ElementPosition>> element_positions_;
  // The elements of each of full_.maps the kernel has (indices), in the kernel's order:
  // elements put back by a toggle go last, and `nft list` shows them there.
  std::vector<std::vector<std::size_t>> map_order_;
};

}  // namespace portier
