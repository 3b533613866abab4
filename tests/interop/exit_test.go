package interop

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"

	"tailscale.com/ipn"
)

// Exit-node advertising through control: with advertise_exit_node our node offers
// 0.0.0.0/0 and ::/0 in its Hostinfo.RoutableIPs; once the tailnet admin approves
// them (testcontrol: SetSubnetRoutes, which puts them in the peers' AllowedIPs and
// PrimaryRoutes), a real tailscaled lists our node as an exit-node option and accepts
// it as its exit node. (Forwarding that traffic is the exit node's job, not tested here.)
func TestExitNodeAdvertised(t *testing.T) {
	if twMode != "control" {
		t.Skip("exit-node routes are offered to control (TW_INTEROP_MODE=control)")
	}
	w := newWorld(t, tailscaleDERP)
	sg, sw := hostSite(t, "ts", "198.18.0.3"), hostSite(t, "tw", "198.18.0.2")
	g := w.startTailscaled("ts1", sg)
	n := w.startTWWith("tw1", sw, func(n *twNode) { n.advertiseExit = true })
	n.waitReady(t, 1)
	all4, all6 := netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")
	start := time.Now()
	waitFor(t, 10*time.Second, "tw1's Hostinfo.RoutableIPs in control has 0.0.0.0/0 and ::/0", func() bool {
		node := w.control.Node(n.nodeKey)
		if node == nil || !node.Hostinfo.Valid() {
			return false
		}
		r := node.Hostinfo.RoutableIPs().AsSlice()
		return slices.Contains(r, all4) && slices.Contains(r, all6)
	})
	w.control.SetSubnetRoutes(n.nodeKey, []netip.Prefix{all4, all6})
	took := waitFor(t, 15*time.Second, "tailscaled lists tw1 as an exit-node option", func() bool {
		ps := g.peer(t, n.nodeKey)
		return ps != nil && ps.ExitNodeOption
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.lc.EditPrefs(ctx, &ipn.MaskedPrefs{Prefs: ipn.Prefs{ExitNodeIP: n.ip}, ExitNodeIPSet: true}); err != nil {
		t.Fatalf("tailscaled --exit-node=%s: %v", n.ip, err)
	}
	waitFor(t, 10*time.Second, "tailscaled uses tw1 as its exit node", func() bool {
		ps := g.peer(t, n.nodeKey)
		return ps != nil && ps.ExitNode
	})
	figure(t, "exit node offered: tailscaled sees tw1 as an exit-node option %.2f s after approval (%.2f s after the routes reached control) and selects it",
		took.Seconds(), time.Since(start).Seconds())
}

// Key expiry through control: a peer whose node key expires (testcontrol: its
// KeyExpiry a few seconds ahead, no further map) leaves our netmap when the time comes,
// and `tailwarden status` counts it.
func TestPeerKeyExpiry(t *testing.T) {
	if twMode != "control" {
		t.Skip("key expiry comes from control (TW_INTEROP_MODE=control)")
	}
	w := newWorld(t, tailscaleDERP)
	sg, sw := hostSite(t, "ts", "198.18.0.3"), hostSite(t, "tw", "198.18.0.2")
	g := w.startTailscaled("ts1", sg)
	n := w.startTW("tw1", sw)
	n.waitReady(t, 1)
	name := n.nameOf(t, g.key(t))
	cur := w.control.Node(g.key(t))
	expiry := time.Now().Add(3 * time.Second)
	cur.KeyExpiry = expiry
	w.control.UpdateNode(cur)
	waitFor(t, 5*time.Second, "the map with ts1's key expiry reaches tw1 (ts1 still in its netmap)", func() bool {
		return expiredPeers(t, n) == 0 && n.peerPath(t, name) != "absent" && time.Now().Before(expiry)
	})
	waitFor(t, 10*time.Second, "ts1 gone from tw1's netmap once its key expired", func() bool {
		return n.peerPath(t, name) == "absent"
	})
	late := time.Since(expiry)
	if got := expiredPeers(t, n); got != 1 {
		t.Fatalf("status control.expired_peers = %v, want 1", got)
	}
	figure(t, "peer key expiry: ts1 left our netmap %.2f s after its KeyExpiry (no map in between)", late.Seconds())
}

func expiredPeers(t testing.TB, n *twNode) float64 {
	out, err := n.cli(t, 5*time.Second, "status", "--json")
	if err != nil {
		return -1
	}
	var st struct {
		Control struct {
			ExpiredPeers float64 `json:"expired_peers"`
		} `json:"control"`
	}
	if json.Unmarshal(out, &st) != nil {
		return -1
	}
	return st.Control.ExpiredPeers
}
