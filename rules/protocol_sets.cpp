#include "protocol_sets.h"

#include <algorithm>
#include <variant>

namespace portier {

std::string protocol_set_name(const std::vector<ir::L4Proto>& protocols) {
  std::string name = "l4/";
  for (std::size_t i = 0; i < protocols.size(); ++i)
    name += (i == 0 ? "" : "_") + std::string(ir::protocol_name(protocols[i]));
  return name;
}

void share_protocol_sets(ir::Ruleset& ruleset) {
  for (ir::Chain& chain : ruleset.chains)
    for (ir::Rule& rule : chain.rules)
      for (ir::Match& match : rule.matches) {
        auto* l4 = std::get_if<ir::L4ProtoIn>(&match);
        if (l4 == nullptr || l4->protocols.size() < 2) continue;
        l4->set = protocol_set_name(l4->protocols);
        const bool declared =
            std::any_of(ruleset.sets.begin(), ruleset.sets.end(),
                        [&](const ir::NamedSet& set) { return set.name == l4->set; });
        if (declared) continue;
        ir::NamedSet set;
        set.name = l4->set;
        set.key = ir::SetKey::inet_proto;
        for (ir::L4Proto protocol : l4->protocols)
          set.elements.push_back(ir::protocol_element(protocol));
        ruleset.sets.push_back(std::move(set));
      }
}

}  // namespace portier
