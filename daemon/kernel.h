// The port between the daemon core and the kernel's nf_tables: NetlinkKernel talks to
// the real kernel, unit tests of the core use a fake. Change notifications have their
// own port, kernel_changes.h.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "published_ports.h"
#include "ruleset.h"

namespace portier {

/// What a KernelError is about: the kind of the object the kernel refused, or a request
/// (a dump, a lookup) or the socket itself.
enum class KernelObject { request, table, chain, set, elements, rule };

/// The kernel refused a transaction (or could not be talked to). what() names the object
/// and the errno text: `kernel refused rule "x" in chain input: Operation not supported`;
/// error() and object() say the same for code to test, without reading the text.
class KernelError : public std::runtime_error {
 public:
  /// `error`: the errno the kernel or the socket gave, 0 when there was none (an answer
  /// missing, a reply that does not parse); `subject`: what was refused or asked for,
  /// as the text names it (`rule "x" in chain input`, `the rules of table inet portier`).
  explicit KernelError(const std::string& text, int error = 0,
                       KernelObject object = KernelObject::request, std::string subject = {})
      : std::runtime_error(text), error_(error), object_(object), subject_(std::move(subject)) {}

  int error() const noexcept { return error_; }
  KernelObject object() const noexcept { return object_; }
  const std::string& subject() const noexcept { return subject_; }

 private:
  int error_;
  KernelObject object_;
  std::string subject_;
};

/// The counter of one rule, or of one element of a RuleMap, as the kernel reports it.
struct RuleCounter {
  std::string chain;          // for a map element: the map's name
  std::string comment;        // the policy rule name from the rule's userdata; empty: none
  std::uint64_t packets = 0;  // 0 when the rule has no counter
  std::uint64_t bytes = 0;
};

/// The kernel's handle of every rule of a loaded ruleset: handles[c][r] belongs to
/// ruleset.chains[c].rules[r].
using RuleHandles = std::vector<std::vector<std::uint64_t>>;

/// Elements of one RuleMap of the loaded table put in or taken out (toggles of merged
/// rules), in one transaction. Elements are found by key; the verdict and comment of an
/// added element go with it, and the map's counter expression gives it a fresh counter.
struct MapEdit {
  std::string map;
  std::vector<ir::KeyField> key;  // the map's key fields
  std::vector<ir::MapElement> add;
  std::vector<ir::MapElement> remove;
};

/// A small change to the loaded table, sent as one transaction: rules taken out by
/// handle, rules put in after a given rule. Counters of the other rules keep counting.
struct TableEdit {
  struct Remove {
    std::string chain;
    std::uint64_t handle = 0;
  };
  struct Insert {
    std::string chain;
    std::uint64_t after_handle = 0;  // 0: at the start of the chain
    ir::Rule rule;
  };
  std::vector<Remove> removes;
  // In order; inserts with the same chain and after_handle end up in this order (each
  // after the one before it), as the kernel places them with NFTA_RULE_POSITION_ID.
  std::vector<Insert> inserts;
  std::vector<MapEdit> maps;  // elements of RuleMaps, in the same transaction
};

/// A change to the elements of a named set of the loaded table, sent as one transaction.
struct SetEdit {
  std::string set;
  ir::SetKey key = ir::SetKey::ipv4_addr;
  bool interval = false;
  std::vector<ir::AddressRange> add;
  std::vector<ir::AddressRange> remove;
  std::optional<std::uint32_t> timeout_seconds;  // for the added elements, in a set with timeouts
};

class Kernel {
 public:
  /// Replaces `table inet <ruleset.table>` atomically: on KernelError the previous table
  /// (or its absence) is left as it was. Returns the handles of the new rules.
  virtual RuleHandles apply(const ir::Ruleset& ruleset) = 0;
  /// The same as apply(next), for a table that holds `loaded` (as the caller last had it
  /// applied, or refilled): where the chains stay the same, their contents are replaced
  /// in place and the base chains stay hooked (encode_refill_batch()); otherwise, and in
  /// a kernel that cannot, the table is replaced whole. On KernelError the table is left
  /// as it was (also when it did not hold `loaded`, and the refill failed for that).
  virtual RuleHandles refill(const ir::Ruleset& loaded, const ir::Ruleset& next) {
    static_cast<void>(loaded);
    return apply(next);
  }
  /// Applies `edit` (rules and map elements) to `table inet <loaded.table>` in one
  /// transaction (all or nothing). `loaded` is the ruleset the table holds, as the caller
  /// last had it applied: its named sets and RuleMaps are what inserted rules may look up
  /// (their elements and the rules are not read). Returns the handles of the inserted
  /// rules, in the order of edit.inserts. Inserted rules may need anonymous sets, which go
  /// into the same transaction.
  virtual std::vector<std::uint64_t> edit(const ir::Ruleset& loaded, const TableEdit& edit) = 0;
  /// Adds and removes elements of one named set in one transaction (all or nothing),
  /// without reading the set back: its size does not matter.
  virtual void edit_set(const std::string& table, const SetEdit& edit) = 0;
  /// Every rule of `table inet <table>` in kernel order, then every element of its
  /// RuleMaps (`maps`, by name) with its counter; empty if the table does not exist.
  virtual std::vector<RuleCounter> read_counters(const std::string& table,
                                                 const std::vector<std::string>& maps) = 0;
  /// The ports other tables publish (their DNAT rules, parse_published_port), read from
  /// every table but `table inet <own_table>`. The default is a kernel with no other tables.
  virtual std::vector<PublishedPort> published_ports(const std::string& own_table) {
    static_cast<void>(own_table);
    return {};
  }
  virtual ~Kernel() = default;
};

}  // namespace portier
