# shellcheck shell=bash
# The soak's policies (tests/soak/soak.sh, and replace_window.sh): source it, then
# write_soak_policies DIR writes DIR/a.toml, b.toml and c.toml.

# Policies. What every one of them has: the stream's port (tcp 5001) and the allowed probe
# port (udp 6001) are forwarded from the wan to the lan; nothing lets anything from the
# wan reach udp 7001, tcp 7002 or tcp 9000 (only @friends may, and the soak never adds
# the client to it) on the server, or udp 7001 and tcp 7002 on the router itself. The
# toggled rules (web, deny-7001) and the set (friends) exist in all of them.
common_policy() {
  cat <<'TOML'
[zone.wan]
interfaces = ["eth0"]

[zone.lan]
interfaces = ["br-lan"]

[set.friends]
family   = "ipv4"
elements = ["198.18.0.1", "198.18.255.0/24"]

[[rule]]
name      = "stream"
direction = "forward"
from      = "wan"
to        = "lan"
protocols = "tcp"
ports     = [5001]
action    = "accept"

[[rule]]
name      = "probe-allowed"
direction = "forward"
from      = "wan"
to        = "lan"
protocols = "udp"
ports     = [6001]
action    = "accept"

[[rule]]
name      = "deny-7001"
direction = "forward"
protocols = "udp"
ports     = [7001]
action    = "drop"

[[rule]]
name      = "web"
direction = "forward"
from      = "wan"
to        = "lan"
protocols = "tcp"
ports     = [8080]
action    = "accept"

[[rule]]
name      = "friends-fwd"
direction = "forward"
from      = "@friends"
to        = "lan"
protocols = "tcp"
ports     = [9000]
action    = "accept"
TOML
}

# write_soak_policies DIR
write_soak_policies() {
  # A: drop by default, ssh from the lan.
  {
    printf '[policy]\ninput = "drop"\noutput = "accept"\nforward = "drop"\n\n'
    common_policy
    printf '\n[[rule]]\nname = "ssh-lan"\nfrom = "lan"\nprotocols = "tcp"\nports = [22]\naction = "accept"\n'
  } >"$1/a.toml"
  # B: reject by default, a blocklist set, and a run of rules that merge into a verdict map.
  {
    printf '[policy]\ninput = "reject"\noutput = "accept"\nforward = "reject"\n\n'
    printf '[set.blocklist]\nfamily = "ipv4"\nelements = ["203.0.113.0/24"]\n\n'
    common_policy
    printf '\n[[rule]]\nname = "blocked"\nfrom = "@blocklist"\naction = "drop"\n'
    for i in 1 2 3 4 5; do
      printf '\n[[rule]]\nname = "svc-%d"\ndirection = "forward"\nfrom = "192.0.2.%d"\nprotocols = "tcp"\nports = [%d]\naction = "accept"\n' \
        "$i" "$i" $((9100 + i))
    done
  } >"$1/b.toml"
  # C, applied and rolled back: drop by default, a rate-limited rule and an IPv6-only one.
  {
    printf '[policy]\ninput = "drop"\noutput = "accept"\nforward = "drop"\n\n'
    common_policy
    printf '\n[[rule]]\nname = "limited"\ndirection = "forward"\nprotocols = "tcp"\nports = [9200]\nlimit = "10/second"\naction = "accept"\n'
    printf '\n[[rule]]\nname = "v6-only"\ndirection = "forward"\nto = "2001:db8::/32"\nprotocols = "udp"\nports = [9300]\naction = "accept"\n'
  } >"$1/c.toml"
}
