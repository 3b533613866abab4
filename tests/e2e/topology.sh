#!/usr/bin/env bash
# Builds the e2e network topologies from scratch in network namespaces, and
# tears them down. Source it, then:
#   topo_up <lan|easy-nat|hard-nat|udp-blocked>   (uses $TOPO_ID to name namespaces)
#   topo_down
#
# lan: both nodes on the "internet" segment, no NAT.
#
#   +-------------------- $NS_INET: br0 198.18.0.1 (DERP relay, STUN) --------------------+
#   |                  198.18.0.0/24                                     [$NS_X .9]       |
#   +----------+------------------------------------------+-----------------------------+
#              | eth0 198.18.0.2                          | eth0 198.18.0.3
#         +----+----+                                +----+----+
#         |  $NS_A  |  node A                        |  $NS_B  |  node B
#         +---------+                                +---------+
#
# easy-nat / hard-nat / udp-blocked: each node behind its own router (NAT).
#
#   +-------------------- $NS_INET: br0 198.18.0.1 (DERP relay, STUN) --------------------+
#   |                  198.18.0.0/24                                     [$NS_X .9]       |
#   +----------+------------------------------------------+-----------------------------+
#              | wan0 198.18.0.2                          | wan0 198.18.0.3
#         +----+----+  masquerade on wan0:           +----+----+
#         | $NS_RA  |  easy = same port for every    | $NS_RB  |
#         +----+----+  destination (EIM); hard =     +----+----+
#              |       fully-random (a new port per       |
#              |       destination); udp-blocked = easy   |
#              |       plus site-to-site UDP dropped      |
#              | lan0 198.18.1.1                          | lan0 198.18.2.1
#              | eth0 198.18.1.2                          | eth0 198.18.2.2
#         +----+----+                                +----+----+
#         |  $NS_A  |  node A                        |  $NS_B  |  node B
#         +---------+                                +---------+
#
# $NS_X (topo_add_stranger) is a host at $STRANGER_IP in no netmap: the attacker of the
# hostile scenario. All addresses exist only inside these namespaces.
set -u

TOPO_ID=${TOPO_ID:-$$}
NS_INET="tw${TOPO_ID}-inet"
NS_A="tw${TOPO_ID}-a"
NS_B="tw${TOPO_ID}-b"
NS_RA="tw${TOPO_ID}-ra"
NS_RB="tw${TOPO_ID}-rb"
NS_X="tw${TOPO_ID}-x"
INET_IP=198.18.0.1
STRANGER_IP=198.18.0.9
TOPO_KIND=""

_nsx() { ip netns exec "$@"; }

# Attaches a new veth from namespace $1 (interface name $2, address $3) to the
# internet bridge.
_attach_inet() {
  local ns=$1 ifname=$2 addr=$3
  local peer="v${ns#tw}${ifname}"
  ip link add "$ifname" netns "$ns" type veth peer name "${peer:0:15}" netns "$NS_INET"
  _nsx "$NS_INET" ip link set "${peer:0:15}" master br0 up
  _nsx "$ns" ip addr add "$addr/24" dev "$ifname"
  _nsx "$ns" ip link set "$ifname" up
}

# A LAN between router namespace $1 (address $3.1) and node namespace $2 ($3.2).
_lan() {
  local router=$1 node=$2 net=$3
  ip link add lan0 netns "$router" type veth peer name eth0 netns "$node"
  _nsx "$router" ip addr add "$net.1/24" dev lan0
  _nsx "$router" ip link set lan0 up
  _nsx "$node" ip addr add "$net.2/24" dev eth0
  _nsx "$node" ip link set eth0 up
  _nsx "$node" ip route add default via "$net.1"
  _nsx "$router" sysctl -qw net.ipv4.ip_forward=1
}

# Source NAT on the router's internet interface; $2 = "random" for endpoint-dependent
# mapping (every new destination gets a new port: hard NAT).
_nat() {
  local router=$1 mode=$2 flags=""
  [ "$mode" = random ] && flags="fully-random"
  _nsx "$router" nft -f - <<NFT
table ip twnat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade $flags
  }
}
# Like a home router: unsolicited packets to the router itself are dropped. Without
# this, a hole-punching packet that arrives before our own outbound one leaves an
# inbound conntrack entry that steals the mapping's port (Linux then remaps ours).
table ip twfw {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan0" ct state new drop
  }
}
NFT
}

topo_up() {
  TOPO_KIND=$1
  ip netns add "$NS_INET"
  _nsx "$NS_INET" ip link set lo up
  _nsx "$NS_INET" ip link add br0 type bridge
  _nsx "$NS_INET" ip addr add "$INET_IP/24" dev br0
  _nsx "$NS_INET" ip link set br0 up
  for ns in "$NS_A" "$NS_B"; do
    ip netns add "$ns"
    _nsx "$ns" ip link set lo up
  done
  case "$TOPO_KIND" in
    lan)
      _attach_inet "$NS_A" eth0 198.18.0.2
      _attach_inet "$NS_B" eth0 198.18.0.3
      ;;
    easy-nat|hard-nat|udp-blocked)
      ip netns add "$NS_RA"
      ip netns add "$NS_RB"
      _attach_inet "$NS_RA" wan0 198.18.0.2
      _attach_inet "$NS_RB" wan0 198.18.0.3
      _lan "$NS_RA" "$NS_A" 198.18.1
      _lan "$NS_RB" "$NS_B" 198.18.2
      local mode=easy
      [ "$TOPO_KIND" = hard-nat ] && mode=random
      _nat "$NS_RA" "$mode"
      _nat "$NS_RB" "$mode"
      if [ "$TOPO_KIND" = udp-blocked ]; then topo_block_udp; fi
      ;;
    *)
      echo "topology: unknown kind $TOPO_KIND" >&2
      return 1
      ;;
  esac
  return 0
}

topo_add_stranger() {
  ip netns add "$NS_X"
  _nsx "$NS_X" ip link set lo up
  _attach_inet "$NS_X" eth0 "$STRANGER_IP"
}

# Drops UDP between the two sites at both routers (STUN and DERP to 198.18.0.1 still
# work); topo_unblock_udp lifts it.
topo_block_udp() {
  for r in "$NS_RA" "$NS_RB"; do
    _nsx "$r" nft -f - <<NFT
table ip twblock {
  chain site_udp {
    type filter hook forward priority filter; policy accept;
    meta l4proto udp ip daddr != $INET_IP ip saddr != $INET_IP oifname "wan0" drop
    meta l4proto udp ip saddr != $INET_IP iifname "wan0" drop
  }
}
NFT
  done
}

topo_unblock_udp() {
  for r in "$NS_RA" "$NS_RB"; do
    _nsx "$r" nft delete table ip twblock 2>/dev/null || true
  done
}

# The address of node A / B as the other side of the internet sees it.
topo_public_ip() {
  case "$TOPO_KIND:$1" in
    lan:a) echo 198.18.0.2 ;;
    lan:b) echo 198.18.0.3 ;;
    *:a) echo 198.18.0.2 ;;
    *:b) echo 198.18.0.3 ;;
  esac
}

topo_node_ip() {
  case "$TOPO_KIND:$1" in
    lan:a) echo 198.18.0.2 ;;
    lan:b) echo 198.18.0.3 ;;
    *:a) echo 198.18.1.2 ;;
    *:b) echo 198.18.2.2 ;;
  esac
}

topo_down() {
  for ns in "$NS_A" "$NS_B" "$NS_RA" "$NS_RB" "${NS_X:-}" "$NS_INET"; do
    [ -n "$ns" ] || continue
    if ip netns list | grep -qw "$ns"; then
      # Only processes started inside our own namespaces.
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}
