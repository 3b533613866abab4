package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// Exit traffic: a kernel-TUN tailscaled uses our node (an [exit] node behind an HTTP
// CONNECT upstream proxy, tinyproxy) as its exit node and fetches a web page from an
// address off the tailnet: the page arrives, the web server sees only the proxy's
// address, never the tailscaled host's, and our node counts the flow.
func TestExitNodeTraffic(t *testing.T) {
	if twMode != "control" {
		t.Skip("exit-node routes are offered to control (TW_INTEROP_MODE=control)")
	}
	if _, err := exec.LookPath("tinyproxy"); err != nil {
		t.Skip("tinyproxy not installed")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	w := newWorld(t, tailscaleDERP)
	sg, sw := hostSite(t, "ts", "198.18.0.3"), hostSite(t, "tw", "198.18.0.2")
	// The "internet": a web server on the backbone, which the tailscaled host could
	// also reach directly (so a leak would show in its log).
	ln, err := net.Listen("tcp", backboneIP+":0")
	must(t, err)
	var mu sync.Mutex
	var seen []string
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.RemoteAddr)
		mu.Unlock()
		fmt.Fprintln(rw, "hello from the internet")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	webURL := "http://" + ln.Addr().String() + "/"
	proxyPort := freeTCPPort(t)
	conf := filepath.Join(w.dir, "tinyproxy.conf")
	// No LogFile: tinyproxy (as nobody) logs to its stderr, which the test keeps.
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf("User nobody\nGroup nogroup\nPort %d\nListen %s\nTimeout 60\nMaxClients 50\nLogLevel Connect\nAllow 198.18.0.0/16\n",
		proxyPort, backboneIP)), 0o644))
	startLogged(t, exec.Command("tinyproxy", "-d", "-c", conf), filepath.Join(w.dir, "tinyproxy.out"))
	waitTCP(t, fmt.Sprintf("%s:%d", backboneIP, proxyPort), 10*time.Second)

	g := w.startTailscaledTUN("ts1", sg, "ts0")
	n := w.startTWWith("tw1", sw, func(n *twNode) { n.exitProxy = fmt.Sprintf("http://%s:%d", backboneIP, proxyPort) })
	n.waitReady(t, 1)
	all4, all6 := netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")
	waitFor(t, 10*time.Second, "tw1 (an [exit] node) offers the default routes to control", func() bool {
		node := w.control.Node(n.nodeKey)
		return node != nil && node.Hostinfo.Valid() && slices.Contains(node.Hostinfo.RoutableIPs().AsSlice(), all4)
	})
	w.control.SetSubnetRoutes(n.nodeKey, []netip.Prefix{all4, all6})
	waitFor(t, 15*time.Second, "tailscaled lists tw1 as an exit-node option", func() bool {
		ps := g.peer(t, n.nodeKey)
		return ps != nil && ps.ExitNodeOption
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.lc.EditPrefs(ctx, &ipn.MaskedPrefs{Prefs: ipn.Prefs{ExitNodeIP: n.ip}, ExitNodeIPSet: true}); err != nil {
		t.Fatalf("tailscaled --exit-node=%s: %v", n.ip, err)
	}
	var body string
	start := time.Now()
	waitFor(t, 30*time.Second, "curl from the tailscaled host through our exit node", func() bool {
		out, err := exec.Command("ip", "netns", "exec", sg.ns, "curl", "-sS", "--max-time", "5", webURL).CombinedOutput()
		body = strings.TrimSpace(string(out))
		return err == nil && body == "hello from the internet"
	})
	took := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	for _, a := range seen {
		if !strings.HasPrefix(a, backboneIP+":") {
			t.Fatalf("the web server saw %s: not only the proxy (%s)", a, backboneIP)
		}
	}
	if log, _ := os.ReadFile(filepath.Join(w.dir, "tinyproxy.out")); !strings.Contains(string(log), "CONNECT") {
		t.Fatalf("tinyproxy log has no CONNECT:\n%s", log)
	}
	flows := n.metric(t, "exit_flows_total")
	if flows < 1 {
		t.Fatalf("exit_flows_total = %v", flows)
	}
	figure(t, "exit traffic: tailscaled (kernel TUN, --exit-node=tw1) fetched %s through our exit and tinyproxy in %.2f s; web server saw only the proxy; exit_flows_total %v",
		webURL, took.Seconds(), flows)
}
