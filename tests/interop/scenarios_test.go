package interop

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tailscale.com/disco"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// goPingUntil pings ip from g until a pong arrives over the wanted path ("derp" or
// "direct"); returns the last result.
func goPingUntil(t testing.TB, g *goNode, n *twNode, want string, d time.Duration) *ipnstate.PingResult {
	t.Helper()
	var last *ipnstate.PingResult
	var lastErr error
	start := time.Now()
	for time.Since(start) < d {
		res, err := g.ping(t, n.ip, 3*time.Second)
		last, lastErr = res, err
		if err == nil && res.Err == "" {
			direct := res.Endpoint != "" && res.DERPRegionID == 0
			if (want == "direct") == direct {
				return res
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s -> %s: no %s pong within %v (last: %+v, err %v)", g.name, n.name, want, d, last, lastErr)
	return nil
}

// twPingUntil pings the Go node from ours until a pong arrives over the wanted path.
func twPingUntil(t testing.TB, n *twNode, peer, want string, d time.Duration) twPing {
	t.Helper()
	var last []twPing
	start := time.Now()
	for time.Since(start) < d {
		res, err := n.ping(t, peer, 1)
		if err == nil {
			last = res
			for _, r := range res {
				if !r.Timeout && r.Via != "" && (r.Via == "derp") == (want == "derp") {
					return r
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s -> %s: no %s pong within %v (last %+v)", n.name, peer, want, d, last)
	return twPing{}
}

// Scenario 1: disco ping both ways between a tsnet node and ours, first over
// Tailscale's DERP (UDP blocked at our node), then direct.
func TestScenario1DiscoPing(t *testing.T) {
	w := newWorld(t, tailscaleDERP)
	s := hostSite(t, "tw", "198.18.0.2") // before tsnet: see startTsnet
	g := w.startTsnet("gotsnet")
	s.blockUDP(t, w.stunPort)
	n := w.startTW("tw1", s)
	n.waitReady(t, 1)

	r := goPingUntil(t, g, n, "derp", 20*time.Second)
	figure(t, "go->tw over DERP(%d %s): pong in %.1f ms", r.DERPRegionID, r.DERPRegionCode, r.LatencySeconds*1000)
	p := twPingUntil(t, n, n.nameOf(t, g.key(t)), "derp", 20*time.Second)
	figure(t, "tw->go over DERP(%v): pong in %.1f ms", p.DERPRegion, p.LatencyMS)

	s.unblockUDP(t)
	start := time.Now()
	r = goPingUntil(t, g, n, "direct", 20*time.Second)
	figure(t, "go->tw direct via %s: pong in %.1f ms (%.2f s after unblocking)", r.Endpoint, r.LatencySeconds*1000, time.Since(start).Seconds())
	p = twPingUntil(t, n, n.nameOf(t, g.key(t)), "direct", 20*time.Second)
	if !strings.HasPrefix(p.Endpoint, "198.18.0.1:") {
		t.Errorf("tw->go direct pong from %q, want the tsnet node's backbone address", p.Endpoint)
	}
	figure(t, "tw->go direct via %s: pong in %.1f ms", p.Endpoint, p.LatencyMS)
}

// bothDirect waits until our node reports a direct path to the Go node and the Go node
// reports a direct CurAddr for ours; returns the time taken.
func bothDirect(t testing.TB, g *goNode, n *twNode, d time.Duration) (time.Duration, string, string) {
	t.Helper()
	var twEp, goEp string
	took := waitFor(t, d, fmt.Sprintf("direct path %s<->%s", g.name, n.name), func() bool {
		if twEp == "" {
			if st, err := n.status(t); err == nil {
				for _, p := range st.Peers {
					if p.Name == n.nameOf(t, g.key(t)) && p.Path == "direct" {
						twEp = p.Endpoint
					}
				}
			}
		}
		if goEp == "" {
			if ps := g.peer(t, n.nodeKey); ps != nil && ps.CurAddr != "" {
				goEp = ps.CurAddr
			}
		}
		return twEp != "" && goEp != ""
	})
	return took, twEp, goEp
}

// goBothDirect is the same for two Go nodes (the Go<->Go reference figure).
func goBothDirect(t testing.TB, a, b *goNode, d time.Duration) time.Duration {
	t.Helper()
	ka, kb := a.key(t), b.key(t)
	return waitFor(t, d, fmt.Sprintf("direct path %s<->%s", a.name, b.name), func() bool {
		pa, pb := a.peer(t, kb), b.peer(t, ka)
		return pa != nil && pb != nil && pa.CurAddr != "" && pb.CurAddr != ""
	})
}

// Scenario 2: a direct path between a real tailscaled and ours, on one segment and
// through an endpoint-independent-mapping NAT on each side. Both sides must report it
// (our status, tailscaled's CurAddr); the time from both nodes ready is the figure.
// Nothing but the nodes themselves drives the path: no pings from the harness.
func TestScenario2Direct(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nat   bool
		limit time.Duration
	}{{"lan", false, 10 * time.Second}, {"eim-nat", true, 15 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tailscaleDERP)
			var sg, sw *site
			if tc.nat {
				sg, sw = natSite(t, "ts", "198.18.0.3", "198.18.2"), natSite(t, "tw", "198.18.0.2", "198.18.1")
			} else {
				sg, sw = hostSite(t, "ts", "198.18.0.3"), hostSite(t, "tw", "198.18.0.2")
			}
			g := w.startTailscaled("ts1", sg)
			n := w.startTW("tw1", sw)
			n.waitReady(t, 1)
			waitFor(t, 10*time.Second, "tailscaled sees tw1", func() bool { return g.peer(t, n.nodeKey) != nil })
			// Both nodes discover paths on demand (as Tailscale does): a UDP stream through
			// the tunnel from ours (20 ms apart, echoed by tailscaled's netstack) is the
			// traffic that starts it.
			startUDPEcho(t, sg.ns, "0.0.0.0:7301", g.dir+"/udpecho.log")
			time.Sleep(100 * time.Millisecond)
			st := startStream(t, sw.ns, fmt.Sprintf("%s:7301", g.ip4(t)))
			took, twEp, goEp := bothDirect(t, g, n, tc.limit)
			figure(t, "time to direct from first packet (both ready): %.2f s (tw sees %s, tailscaled sees %s)", took.Seconds(), twEp, goEp)
			waitFor(t, 5*time.Second, "UDP echoes through the tunnel", st.flowing)
			if !tc.nat && took > time.Second {
				t.Errorf("time to direct on the LAN %.2f s > 1 s", took.Seconds())
			}
			// The path carries disco both ways.
			r := goPingUntil(t, g, n, "direct", 5*time.Second)
			p := twPingUntil(t, n, n.nameOf(t, g.key(t)), "direct", 5*time.Second)
			figure(t, "direct pongs: go->tw %.1f ms via %s, tw->go %.1f ms via %s", r.LatencySeconds*1000, r.Endpoint, p.LatencyMS, p.Endpoint)

			// Go<->Go reference in the same topology kind.
			var sg2 *site
			if tc.nat {
				sg2 = natSite(t, "ts2", "198.18.0.4", "198.18.3")
			} else {
				sg2 = hostSite(t, "ts2", "198.18.0.4")
			}
			g2 := w.startTailscaled("ts2", sg2)
			waitFor(t, 10*time.Second, "ts2 sees ts1", func() bool { return g2.peer(t, g.key(t)) != nil })
			// Traffic for the Go pair: TSMP pings (IP protocol 99 inside WireGuard,
			// answered by tailscaled's stack), 20 ms apart.
			stop := make(chan struct{})
			go func() {
				ip := g.ip4(t)
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					g2.lc.Ping(ctx, ip, tailcfg.PingTSMP)
					cancel()
					time.Sleep(20 * time.Millisecond)
				}
			}()
			ref := goBothDirect(t, g, g2, tc.limit)
			close(stop)
			figure(t, "reference tailscaled<->tailscaled time to direct from first packet: %.2f s", ref.Seconds())
		})
	}
}

// relayEcho checks TCP both ways between a tailscaled and ours: tailscale nc to an echo
// server on our TUN address, and our namespace dialing the tailscaled's address (its
// netstack forwards to the echo server on its loopback).
func tcpBothWays(t testing.TB, g *goNode, n *twNode, port int) {
	t.Helper()
	startEcho(t, n.site.ns, fmt.Sprintf("%s:%d", n.ip, port), fmt.Sprintf("%s/echo-%d.log", n.dir, port))
	startEcho(t, g.site.ns, fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("%s/echo-%d.log", g.dir, port))
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	reply, err := g.nc(t, n.ip, port, "from-"+g.name)
	if err != nil || reply != "echo:from-"+g.name {
		t.Fatalf("TCP %s -> %s:%d: %q %v", g.name, n.ip, port, reply, err)
	}
	figure(t, "TCP %s->%s round trip (incl. tailscale nc start) %.0f ms", g.name, n.name, time.Since(start).Seconds()*1000)
	start = time.Now()
	reply, err = dialEcho(t, n.site.ns, fmt.Sprintf("%s:%d", g.ip4(t), port), "from-"+n.name)
	if err != nil || reply != "echo:from-"+n.name {
		t.Fatalf("TCP %s -> %s: %q %v", n.name, g.name, reply, err)
	}
	figure(t, "TCP %s->%s round trip (incl. helper start) %.0f ms", n.name, g.name, time.Since(start).Seconds()*1000)
}

// Scenario 3a: UDP blocked at our node: disco and TCP data between a real tailscaled
// and ours flow through Tailscale's DERP server.
func TestScenario3TailscaleDERP(t *testing.T) {
	w := newWorld(t, tailscaleDERP)
	sg, sw := hostSite(t, "ts", "198.18.0.3"), hostSite(t, "tw", "198.18.0.2")
	sw.blockUDP(t, w.stunPort)
	g := w.startTailscaled("ts1", sg)
	n := w.startTW("tw1", sw)
	n.waitReady(t, 1)
	r := goPingUntil(t, g, n, "derp", 20*time.Second)
	figure(t, "tailscaled->tw over DERP(%s): %.1f ms", r.DERPRegionCode, r.LatencySeconds*1000)
	p := twPingUntil(t, n, n.nameOf(t, g.key(t)), "derp", 20*time.Second)
	figure(t, "tw->tailscaled over DERP(%v): %.1f ms", p.DERPRegion, p.LatencyMS)
	tcpBothWays(t, g, n, 7001)
	if ps := g.peer(t, n.nodeKey); ps == nil || ps.CurAddr != "" || ps.Relay != "test" {
		t.Errorf("tailscaled's view of tw1 after data: %+v, want relay \"test\" and no CurAddr", ps)
	}
	if path := n.peerPath(t, n.nameOf(t, g.key(t))); path != "derp" {
		t.Errorf("our path to ts1 = %q, want derp", path)
	}
}

// Scenario 3b: our tailwarden-derper serves real Tailscale clients: two tailscaleds that
// may only use DERP, and a tailscaled with ours (UDP blocked at ours).
func TestScenario3OurDERP(t *testing.T) {
	w := newWorld(t, tailwardenDERP)
	s1, s2, sw := hostSite(t, "ts", "198.18.0.3"), hostSite(t, "ts2", "198.18.0.4"), hostSite(t, "tw", "198.18.0.2")
	g1 := w.startTailscaled("ts1", s1, "TS_DEBUG_ALWAYS_USE_DERP=1")
	g2 := w.startTailscaled("ts2", s2, "TS_DEBUG_ALWAYS_USE_DERP=1")
	var r *ipnstate.PingResult
	waitFor(t, 20*time.Second, "ts1->ts2 pong over our DERP", func() bool {
		res, err := g1.ping(t, g2.ip4(t), 3*time.Second)
		r = res
		return err == nil && res.Err == "" && res.DERPRegionID == 900
	})
	figure(t, "tailscaled->tailscaled over tailwarden-derper: %.1f ms", r.LatencySeconds*1000)
	startEcho(t, s2.ns, "127.0.0.1:7002", w.dir+"/echo-ts2.log")
	time.Sleep(200 * time.Millisecond)
	if reply, err := g1.nc(t, g2.ip4(t), 7002, "hello"); err != nil || reply != "echo:hello" {
		t.Fatalf("TCP ts1->ts2 over our DERP: %q %v", reply, err)
	}

	sw.blockUDP(t, w.stunPort)
	n := w.startTW("tw1", sw)
	n.waitReady(t, 2)
	r = goPingUntil(t, g1, n, "derp", 20*time.Second)
	if r.DERPRegionID != 900 {
		t.Errorf("pong via region %d, want 900", r.DERPRegionID)
	}
	figure(t, "tailscaled->tw over tailwarden-derper: %.1f ms", r.LatencySeconds*1000)
	p := twPingUntil(t, n, n.nameOf(t, g1.key(t)), "derp", 20*time.Second)
	figure(t, "tw->tailscaled over tailwarden-derper: %.1f ms", p.LatencyMS)
	tcpBothWays(t, g1, n, 7003)
}

// Scenario 4: WireGuard data between a tsnet node and ours, TCP both ways: tsnet Dial
// to a listener on our TUN address, and our namespace dialing a tsnet Listen.
func TestScenario4TCP(t *testing.T) {
	w := newWorld(t, tailscaleDERP)
	sw := hostSite(t, "tw", "198.18.0.2") // before tsnet: see startTsnet
	g := w.startTsnet("gotsnet")
	n := w.startTW("tw1", sw)
	n.waitReady(t, 1)

	ln, err := g.ts.Listen("tcp", ":7101")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, "echo:"+line)
				}
			}()
		}
	}()
	startEcho(t, sw.ns, fmt.Sprintf("%s:7102", n.ip), n.dir+"/echo.log")
	waitFor(t, 10*time.Second, "tsnet sees tw1", func() bool { return g.peer(t, n.nodeKey) != nil })
	time.Sleep(200 * time.Millisecond)

	// tsnet -> ours: the first packet also brings up the WireGuard session.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := g.ts.Dial(ctx, "tcp", fmt.Sprintf("%s:7102", n.ip))
	if err != nil {
		t.Fatalf("tsnet Dial to our TUN address: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "hello-from-tsnet\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "echo:hello-from-tsnet\n" {
		t.Fatalf("tsnet -> tw echo: %q %v", line, err)
	}
	figure(t, "tsnet->tw TCP connect+echo %.0f ms", time.Since(start).Seconds()*1000)

	start = time.Now()
	reply, err := dialEcho(t, sw.ns, fmt.Sprintf("%s:7101", g.ip4(t)), "hello-from-tw")
	if err != nil || reply != "echo:hello-from-tw" {
		t.Fatalf("tw -> tsnet Listen: %q %v", reply, err)
	}
	figure(t, "tw->tsnet TCP connect+echo %.0f ms (incl. helper start)", time.Since(start).Seconds()*1000)

	// Bulk: 4 MiB through the tunnel from tsnet to ours and back.
	const size = 4 << 20
	start = time.Now()
	c2, err := g.ts.Dial(ctx, "tcp", fmt.Sprintf("%s:7102", n.ip))
	must(t, err)
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(30 * time.Second))
	payload := strings.Repeat(strings.Repeat("x", 1023)+"\n", size/1024)
	errc := make(chan error, 1)
	go func() { _, err := io.WriteString(c2, payload); errc <- err }()
	got, err := io.CopyN(io.Discard, c2, int64(size+5*size/1024))
	if err != nil {
		t.Fatalf("bulk echo: %d bytes back: %v", got, err)
	}
	must(t, <-errc)
	secs := time.Since(start).Seconds()
	figure(t, "bulk 4 MiB tsnet->tw->tsnet echo in %.2f s (%.1f Mbit/s each way)", secs, float64(size)*8/secs/1e6)

	if ps := g.peer(t, n.nodeKey); ps == nil || ps.LastHandshake.IsZero() {
		t.Errorf("tsnet reports no WireGuard handshake with tw1: %+v", ps)
	}
}

// Scenario 6: robustness against the real thing. tailscaled restarts (new disco key)
// on a new port (new endpoints); ours follows the netmap and gets a direct path back.
// tailscaled is removed from our netmap and comes back.
func TestScenario6RestartAndRemoval(t *testing.T) {
	w := newWorld(t, tailscaleDERP)
	sg, sw, s2 := hostSite(t, "ts", "198.18.0.3"), hostSite(t, "tw", "198.18.0.2"), hostSite(t, "ts2", "198.18.0.4")
	g := w.startTailscaled("ts1", sg)
	g2 := w.startTailscaled("ts2", s2) // the Go<->Go reference for the restart
	n := w.startTW("tw1", sw)
	n.waitReady(t, 2)
	waitFor(t, 10*time.Second, "tailscaled sees tw1", func() bool { return g.peer(t, n.nodeKey) != nil })
	ref := startTSMPStream(t, g2, g.ip4(t))
	waitFor(t, 10*time.Second, "ts2->ts1 TSMP stream", ref.flowing)
	// Traffic through the tunnel all along (paths are discovered on demand).
	startUDPEcho(t, sg.ns, "0.0.0.0:7401", g.dir+"/udpecho.log")
	time.Sleep(100 * time.Millisecond)
	st := startStream(t, sw.ns, fmt.Sprintf("%s:7401", g.ip4(t)))
	bothDirect(t, g, n, 10*time.Second)
	waitFor(t, 5*time.Second, "UDP echoes through the tunnel", st.flowing)
	gk := g.key(t)
	oldDisco := w.control.Node(gk).DiscoKey

	stopAt := time.Now()
	g.stop()
	g.port = 41642
	start := time.Now()
	g.launch(t)
	g.waitRunning(t)
	waitFor(t, 15*time.Second, "new disco key and endpoint in control", func() bool {
		cur := w.control.Node(gk)
		if cur == nil || cur.DiscoKey == oldDisco {
			return false
		}
		for _, e := range cur.Endpoints {
			if e.Port() == 41642 {
				return true
			}
		}
		return false
	})
	var twEp string
	waitFor(t, 20*time.Second, "direct again both ways, ours to the new port", func() bool {
		twEp = ""
		if st, err := n.status(t); err == nil {
			for _, p := range st.Peers {
				if p.Name == n.nameOf(t, g.key(t)) && p.Path == "direct" {
					twEp = p.Endpoint
				}
			}
		}
		ps := g.peer(t, n.nodeKey)
		return strings.HasSuffix(twEp, ":41642") && ps != nil && ps.CurAddr != ""
	})
	took := time.Since(start)
	waitFor(t, 20*time.Second, "UDP echoes again after the restart", st.flowing)
	waitFor(t, 20*time.Second, "ts2->ts1 TSMP answers again after the restart", ref.flowing)
	gap, _ := st.gapAfter(stopAt)
	refGap, _ := ref.gapAfter(stopAt)
	figure(t, "tailscaled restarted (new disco key, port 41641->41642; down %.2f s): both direct again %.2f s after relaunch (ours via %s); data gap tw->ts1 %.2f s, reference ts2->ts1 %.2f s",
		start.Sub(stopAt).Seconds(), took.Seconds(), twEp, gap.Seconds(), refGap.Seconds())
	p := twPingUntil(t, n, n.nameOf(t, g.key(t)), "direct", 5*time.Second)
	r := goPingUntil(t, g, n, "direct", 5*time.Second)
	figure(t, "after restart: direct pongs tw->go via %s, go->tw via %s", p.Endpoint, r.Endpoint)

	n.setExcluded(gk, true)
	waitFor(t, 5*time.Second, "ts1 gone from our status", func() bool { return n.peerPath(t, n.nameOf(t, g.key(t))) == "absent" })
	waitFor(t, 5*time.Second, "no more UDP echoes to a removed peer", func() bool { return !st.flowing() })
	if res, err := n.ping(t, n.nameOf(t, g.key(t)), 1); err == nil && len(res) > 0 && !res[0].Timeout {
		t.Errorf("ping to a removed peer answered: %+v", res)
	}
	n.setExcluded(gk, false)
	start = time.Now()
	took = waitFor(t, 15*time.Second, "UDP echoes again after restoring the peer", st.flowing)
	p = twPingUntil(t, n, n.nameOf(t, g.key(t)), "direct", 10*time.Second)
	figure(t, "removed from our netmap (data stops), restored: data flows %.2f s after restoring, direct pong via %s", took.Seconds(), p.Endpoint)
}

func (n *twNode) metric(t testing.TB, suffix string) float64 {
	t.Helper()
	out, err := n.cli(t, 5*time.Second, "metrics")
	if err != nil {
		t.Fatalf("tailwarden metrics: %v", err)
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		if strings.HasSuffix(name, suffix) {
			var v float64
			fmt.Sscan(f[1], &v)
			sum += v
			found = true
		}
	}
	if !found {
		t.Fatalf("no metric *%s in:\n%s", suffix, out)
	}
	return sum
}

// Scenario 6b: disco message types Tailscale v1.102 has and we do not implement (the
// peer-relay messages 0x04-0x09), encoded and sealed by Tailscale's own disco package
// from a peer in our netmap: ours drops each one without a reply and counts it, and
// a ping right after is still answered.
func TestScenario6UnknownDiscoTypes(t *testing.T) {
	w := newWorld(t, tailscaleDERP)
	sw := hostSite(t, "tw", "198.18.0.2")
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(backboneIP)})
	must(t, err)
	defer uc.Close()
	fakeDisco, fakeNode := key.NewDisco(), key.NewNode()
	fakeIP := netip.MustParseAddr("100.64.0.250")
	w.ensureNodeMap()
	w.control.UpdateNode(&tailcfg.Node{
		ID: 250, StableID: "FAKE250", Name: "fake.", User: 250, Key: fakeNode.Public(),
		Machine: key.NewMachine().Public(), DiscoKey: fakeDisco.Public(),
		Addresses: []netip.Prefix{netip.PrefixFrom(fakeIP, 32)}, AllowedIPs: []netip.Prefix{netip.PrefixFrom(fakeIP, 32)},
		Endpoints: []netip.AddrPort{uc.LocalAddr().(*net.UDPAddr).AddrPort()}, HomeDERP: w.region,
		MachineAuthorized: true, Hostinfo: (&tailcfg.Hostinfo{Hostname: "fake"}).View(),
	})
	n := w.startTW("tw1", sw)
	n.waitReady(t, 2)
	shared := fakeDisco.Shared(n.discoKey)
	to := &net.UDPAddr{IP: net.ParseIP(sw.ip), Port: 41641}
	seal := func(m disco.Message) []byte {
		pkt := append([]byte(disco.Magic), fakeDisco.Public().AppendTo(nil)...)
		return append(pkt, shared.Seal(m.AppendMarshal(nil))...)
	}
	// pingPong sends a Ping and waits for the Pong with its TxID (other disco messages
	// from ours, e.g. its own pings to this endpoint, are skipped).
	pingPong := func() error {
		var tx [12]byte
		rand.Read(tx[:])
		if _, err := uc.WriteToUDP(seal(&disco.Ping{TxID: tx, NodeKey: fakeNode.Public()}), to); err != nil {
			return err
		}
		buf := make([]byte, 2048)
		uc.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			m, _, err := uc.ReadFromUDP(buf)
			if err != nil {
				return err
			}
			p := buf[:m]
			if !disco.LooksLikeDiscoWrapper(p) {
				continue
			}
			clear, ok := shared.Open(p[len(disco.Magic)+32:])
			if !ok {
				return fmt.Errorf("cannot open a disco reply from ours")
			}
			msg, err := disco.Parse(clear)
			if err != nil {
				return fmt.Errorf("Tailscale cannot parse our disco reply: %v", err)
			}
			if pong, ok := msg.(*disco.Pong); ok && pong.TxID == tx {
				return nil
			}
		}
	}
	waitFor(t, 10*time.Second, "a pong from ours to the fake peer", func() bool { return pingPong() == nil })

	before := n.metric(t, "disco_rx_unknown_type_total")
	other := n.metric(t, "disco_rx_bad_message_total")
	msgs := []disco.Message{
		&disco.BindUDPRelayEndpoint{},
		&disco.BindUDPRelayEndpointChallenge{},
		&disco.BindUDPRelayEndpointAnswer{},
		&disco.CallMeMaybeVia{UDPRelayEndpoint: disco.UDPRelayEndpoint{AddrPorts: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:9")}}},
		&disco.AllocateUDPRelayEndpointRequest{ClientDisco: [2]key.DiscoPublic{fakeDisco.Public(), n.discoKey}, Generation: 1},
		&disco.AllocateUDPRelayEndpointResponse{Generation: 1},
	}
	for _, m := range msgs {
		_, err := uc.WriteToUDP(seal(m), to)
		must(t, err)
	}
	waitFor(t, 5*time.Second, "6 unknown disco types counted", func() bool {
		return n.metric(t, "disco_rx_unknown_type_total")-before >= float64(len(msgs))
	})
	if got := n.metric(t, "disco_rx_unknown_type_total") - before; got != float64(len(msgs)) {
		t.Errorf("unknown-type counter rose by %v, want %d", got, len(msgs))
	}
	if got := n.metric(t, "disco_rx_bad_message_total") - other; got != 0 {
		t.Errorf("bad-message counter rose by %v for well-formed messages of unknown types", got)
	}
	if err := pingPong(); err != nil {
		t.Fatalf("ping after the unknown types: %v", err)
	}
	figure(t, "types 0x04-0x09 (Tailscale-encoded): %d dropped and counted, ping still answered", len(msgs))
}

// The tailnet's ACLs, enforced by ours on what peers send: control (or, in enroll mode,
// our netmap file) allows TCP to one port of our node only. A real tailscaled reaches
// that port, not the other one (the SYN is dropped and counted by reason), and
// connections our node opens still work (their replies are not new connections).
func TestPacketFilter(t *testing.T) {
	w := newWorld(t, tailscaleDERP)
	sg, sw := hostSite(t, "ts", "198.18.0.3"), hostSite(t, "tw", "198.18.0.2")
	g := w.startTailscaled("ts1", sg)
	n := w.startTW("tw1", sw)
	n.waitReady(t, 1)
	const open, closed = 7101, 7102
	startEcho(t, sw.ns, fmt.Sprintf("%s:%d", n.ip, open), n.dir+"/echo-open.log")
	startEcho(t, sw.ns, fmt.Sprintf("%s:%d", n.ip, closed), n.dir+"/echo-closed.log")
	startEcho(t, sg.ns, "127.0.0.1:7103", g.dir+"/echo-7103.log")
	time.Sleep(200 * time.Millisecond)
	for _, port := range []int{open, closed} {
		if reply, err := g.nc(t, n.ip, port, "before"); err != nil || reply != "echo:before" {
			t.Fatalf("before the filter, TCP ts1 -> tw1:%d: %q %v", port, reply, err)
		}
	}
	rules := []tailcfg.FilterRule{{
		SrcIPs:   []string{"*"},
		DstPorts: []tailcfg.NetPortRange{{IP: n.ip.String(), Ports: tailcfg.PortRange{First: open, Last: open}}},
		IPProto:  []int{6},
	}}
	n.setFilter(rules)
	waitFor(t, 10*time.Second, "dataproc has a 1-rule packet filter", func() bool {
		b, _ := os.ReadFile(filepath.Join(n.dir, "log"))
		return strings.Contains(string(b), "packet filter for generation") &&
			strings.Contains(string(b[strings.LastIndex(string(b), "packet filter for generation"):]), ": 1 rules")
	})
	drops0 := n.metric(t, "dataproc_filter_drop_no_rule_total")
	if reply, err := g.nc(t, n.ip, open, "allowed"); err != nil || reply != "echo:allowed" {
		t.Fatalf("TCP to the allowed port %d: %q %v", open, reply, err)
	}
	if reply, err := g.ncWithin(t, n.ip, closed, "forbidden", 3*time.Second); err == nil {
		t.Fatalf("TCP to the forbidden port %d answered: %q", closed, reply)
	}
	drops := n.metric(t, "dataproc_filter_drop_no_rule_total") - drops0
	if drops < 1 {
		t.Fatalf("forbidden connection not counted: dataproc_filter_drop_no_rule_total +%v", drops)
	}
	if b, _ := os.ReadFile(n.dir + "/echo-closed.log"); strings.Contains(string(b), "forbidden") {
		t.Fatalf("the forbidden port's server got data: %s", b)
	}
	// Outbound: our node opens a connection; its replies pass the filter.
	if reply, err := dialEcho(t, sw.ns, fmt.Sprintf("%s:7103", g.ip4(t)), "outbound"); err != nil || reply != "echo:outbound" {
		t.Fatalf("TCP tw1 -> ts1 under the filter: %q %v", reply, err)
	}
	figure(t, "packet filter (TCP to port %d only): allowed port answered, forbidden port silent, %v SYNs dropped and counted, outbound TCP unaffected", open, drops)
	n.setFilter(nil)
	waitFor(t, 15*time.Second, "the forbidden port reachable again after the filter is lifted", func() bool {
		reply, err := g.ncWithin(t, n.ip, closed, "after", 3*time.Second)
		return err == nil && reply == "echo:after"
	})
}
