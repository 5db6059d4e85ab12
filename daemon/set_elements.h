// Set elements as users give them at run time (AddSetElements, `portierctl set add`):
// whether one fits a set, its canonical text, the kernel element it becomes, and which
// elements of a call change the set in force. Pure: no kernel, no files.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_set>
#include <vector>

#include "policy.h"
#include "ruleset.h"
#include "runtime_state.h"

namespace portier {

/// Whether `element` (an address, a network or a port) belongs in `set`'s family.
bool element_fits(const NamedSet& set, const std::string& element);
/// Adds or removes one element that fits `set` (element_fits()) in the policy model.
void add_element(NamedSet& set, const std::string& element);
void remove_element(NamedSet& set, const std::string& element);
/// The set's element at `index` as portierd lists it: `10.0.0.0/8`, `22`, `1000-2000`.
std::string format_element(const NamedSet& set, std::size_t index);
/// The element as portierd lists it, so that one element written two ways is one element.
std::string canonical_element(const NamedSet& set, const std::string& element);
/// The kernel's element of `set` for one element as the user wrote it.
ir::AddressRange element_range(const NamedSet& set, const std::string& element);

struct RangeHash {
  std::size_t operator()(const ir::AddressRange& range) const;
};
using RangeSet = std::unordered_set<ir::AddressRange, RangeHash>;

/// Of the elements of one add or remove call on `set` (of the policy in force), the ones
/// that change it, canonical and each once: those it does not hold yet (add) or holds
/// (remove); and which of them the policy itself lists.
struct SetChange {
  std::vector<std::string> elements;
  RangeSet in_policy;
};
/// `set` is the policy's own (before `runtime`'s elements); each of `elements` fits it.
SetChange set_change(const NamedSet& set, const RuntimeState& runtime,
                     const std::vector<std::string>& elements, bool add);

}  // namespace portier
