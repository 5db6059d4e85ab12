// What a packet relayed from the policy's nflog group met, in the words of its log line
// and of PacketLogged: a chain's default verdict says it in its log prefix; a rule's log
// line does not, and the rule's action in the policy in force does.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "firewall.h"
#include "packet_log.h"

namespace portier {

class PacketVerdicts {
 public:
  /// "denied" or "accepted" for a chain's default verdict; "accepted", "dropped" or
  /// "rejected" for a rule of `firewall`'s policy in force (timed rules included); else
  /// "logged" (a rule no longer there, a prefix that is not portier's).
  std::string of(const LogPrefix& prefix, const Firewall& firewall);

 private:
  // The verdict word of each rule, for the generation they were taken from: looked up
  // once per loaded ruleset, not for every packet.
  std::map<std::string, std::string, std::less<>> rules_;
  std::optional<std::uint64_t> generation_;
};

}  // namespace portier
