#include "set_elements.h"

#include <charconv>
#include <string_view>

#include "compile_policy.h"

namespace portier {

bool element_fits(const NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(element.data(), element.data() + element.size(), value);
    return ec == std::errc() && end == element.data() + element.size() && value <= 65535;
  }
  auto cidr = parse_cidr(element);
  return cidr && (cidr->family == Family::ipv4) == (set.family == SetFamily::ipv4);
}

void add_element(NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) {
    auto port = static_cast<std::uint16_t>(std::stoul(element));
    set.ports.push_back({port, port});
  } else {
    set.addresses.push_back(*parse_cidr(element));
  }
}

void remove_element(NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) {
    auto port = static_cast<std::uint16_t>(std::stoul(element));
    std::erase(set.ports, PortRange{port, port});
  } else {
    std::erase(set.addresses, *parse_cidr(element));
  }
}

std::string format_element(const NamedSet& set, std::size_t index) {
  if (set.family != SetFamily::port) return to_string(set.addresses[index]);
  const PortRange& range = set.ports[index];
  return range.first == range.last ? std::to_string(range.first)
                                   : std::to_string(range.first) + "-" + std::to_string(range.last);
}

std::string canonical_element(const NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) return std::to_string(std::stoul(element));
  return to_string(*parse_cidr(element));
}

ir::AddressRange element_range(const NamedSet& set, const std::string& element) {
  if (set.family == SetFamily::port) {
    auto port = static_cast<std::uint16_t>(std::stoul(element));
    return {ir::port_element(port), ir::port_element(port)};
  }
  return to_range(*parse_cidr(element));
}

std::size_t RangeHash::operator()(const ir::AddressRange& range) const {
  std::string_view first(reinterpret_cast<const char*>(range.first.bytes.data()),
                         range.first.bytes.size());
  std::string_view last(reinterpret_cast<const char*>(range.last.bytes.data()),
                        range.last.bytes.size());
  return std::hash<std::string_view>()(first) * 31 + std::hash<std::string_view>()(last) +
         static_cast<std::size_t>(range.first.family);
}

SetChange set_change(const NamedSet& set, const RuntimeState& runtime,
                     const std::vector<std::string>& elements, bool add) {
  SetChange change;
  std::unordered_set<std::string> seen;
  for (const std::string& element : elements)
    if (std::string canonical = canonical_element(set, element); seen.insert(canonical).second)
      change.elements.push_back(std::move(canonical));
  // What the set holds now: the policy's own elements less those removed at run time,
  // and those added at run time. One pass over each (a set may hold a million).
  std::unordered_set<std::string_view> wanted(change.elements.begin(), change.elements.end());
  RangeSet wanted_ranges;
  for (const std::string& element : change.elements)
    wanted_ranges.insert(element_range(set, element));
  auto policy_has = [&](const ir::AddressRange& range) {
    if (wanted_ranges.count(range)) change.in_policy.insert(range);
  };
  if (set.family == SetFamily::port) {
    for (const PortRange& ports : set.ports)
      policy_has({ir::port_element(ports.first), ir::port_element(ports.last)});
  } else {
    for (const Cidr& cidr : set.addresses) policy_has(to_range(cidr));
  }
  std::unordered_set<std::string_view> added, removed;
  for (const RuntimeElement& e : runtime.added_elements)
    if (e.set == set.name && wanted.count(e.element)) added.insert(e.element);
  for (const RuntimeElement& e : runtime.removed_elements)
    if (e.set == set.name && wanted.count(e.element)) removed.insert(e.element);
  std::vector<std::string> changing;
  for (std::string& element : change.elements) {
    bool present = added.count(element) ||
                   (change.in_policy.count(element_range(set, element)) && !removed.count(element));
    // Adding what is there, or removing what is not, changes nothing (as `nft add
    // element` of one the set has); only the others go to the kernel and the record.
    if (present != add) changing.push_back(std::move(element));
  }
  change.elements = std::move(changing);
  return change;
}

}  // namespace portier
