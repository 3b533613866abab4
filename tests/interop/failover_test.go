package interop

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"tailscale.com/tailcfg"
)

// stream is a udpstream helper running in a namespace: the arrival time of every
// echoed datagram, read live from its stdout.
type stream struct {
	mu    sync.Mutex
	times []time.Time
}

func startStream(t testing.TB, ns, dst string) *stream {
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), roleEnv+"=udpstream", "TW_ECHO_DIAL="+dst)
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	s := &stream{}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			now := time.Now()
			s.mu.Lock()
			s.times = append(s.times, now)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return s
}

// startTSMPStream pings ip from g with TSMP (IP protocol 99 inside WireGuard, answered
// by the peer's tailscaled) every 50 ms and records each answer's arrival: the data
// stream of a tailscaled pair that has no kernel stack to run a helper on.
func startTSMPStream(t testing.TB, g *goNode, ip netip.Addr) *stream {
	s := &stream{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			res, err := g.lc.Ping(ctx, ip, tailcfg.PingTSMP)
			cancel()
			if err == nil && res.Err == "" {
				s.mu.Lock()
				s.times = append(s.times, time.Now())
				s.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return s
}

func startUDPEcho(t testing.TB, ns, addr, logPath string) {
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), roleEnv+"=udpecho", "TW_ECHO_LISTEN="+addr)
	startLogged(t, cmd, logPath)
}

// gapAfter is the longest silence between echoes that ends after t0 (counting from the
// last echo before t0), and whether the stream has been flowing again for 500 ms since.
func (s *stream) gapAfter(t0 time.Time) (gap time.Duration, flowing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gapEnd time.Time
	for i := 1; i < len(s.times); i++ {
		if s.times[i].Before(t0) {
			continue
		}
		if d := s.times[i].Sub(s.times[i-1]); d > gap {
			gap, gapEnd = d, s.times[i]
		}
	}
	if len(s.times) == 0 || gapEnd.IsZero() {
		return gap, false
	}
	last := s.times[len(s.times)-1]
	return gap, gap > 200*time.Millisecond && last.Sub(gapEnd) > 500*time.Millisecond && time.Since(last) < 200*time.Millisecond
}

func (s *stream) flowing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times) > 10 && time.Since(s.times[len(s.times)-1]) < 200*time.Millisecond
}

// Scenario 5: failover and return. Four nodes each behind its own EIM NAT: two
// tailscaleds (kernel TUN) and two of ours. Three UDP streams through the tunnels (20 ms
// apart): Go<->tailwarden, tailwarden<->tailwarden, Go<->Go. All direct; then UDP is
// blocked at every router (DERP and STUN stay reachable) and later unblocked. Figures:
// the longest gap in each stream after blocking (until it flows over DERP), and the time
// from unblocking until both ends of each pair report a direct path again.
func TestScenario5Failover(t *testing.T) {
	w := newWorld(t, tailscaleDERP)
	sA := natSite(t, "tw", "198.18.0.2", "198.18.1")
	sB := natSite(t, "ts", "198.18.0.3", "198.18.2")
	sC := natSite(t, "twb", "198.18.0.4", "198.18.3")
	sD := natSite(t, "tsb", "198.18.0.5", "198.18.4")
	ts1 := w.startTailscaledTUN("ts1", sB, "ts0")
	ts2 := w.startTailscaledTUN("ts2", sD, "ts0")
	tw1 := w.startTW("tw1", sA)
	tw2 := w.startTW("tw2", sC)
	tw1.waitReady(t, 3)
	tw2.waitReady(t, 3)
	k1, k2 := ts1.key(t), ts2.key(t)
	startUDPEcho(t, sB.ns, "0.0.0.0:7201", w.dir+"/udpecho-ts1.log")
	startUDPEcho(t, sC.ns, "0.0.0.0:7202", w.dir+"/udpecho-tw2.log")
	time.Sleep(200 * time.Millisecond)
	ts1IP := ts1.ip4(t)
	type pair struct {
		name   string
		s      *stream
		direct func() bool
	}
	pairs := []pair{
		{"go<->tailwarden", startStream(t, sA.ns, fmt.Sprintf("%s:7201", ts1IP)), func() bool {
			ps := ts1.peer(t, tw1.nodeKey)
			return tw1.peerPath(t, "ts1") == "direct" && ps != nil && ps.CurAddr != ""
		}},
		{"tailwarden<->tailwarden", startStream(t, sA.ns, fmt.Sprintf("%s:7202", tw2.ip)), func() bool {
			return tw1.peerPath(t, "tw2") == "direct" && tw2.peerPath(t, "tw1") == "direct"
		}},
		{"go<->go", startStream(t, sD.ns, fmt.Sprintf("%s:7201", ts1IP)), func() bool {
			a, b := ts2.peer(t, k1), ts1.peer(t, k2)
			return a != nil && b != nil && a.CurAddr != "" && b.CurAddr != ""
		}},
	}
	for _, p := range pairs {
		waitFor(t, 20*time.Second, p.name+" stream flowing and direct", func() bool { return p.s.flowing() && p.direct() })
	}
	time.Sleep(time.Second)

	routers := []*site{sA, sB, sC, sD}
	blocked := time.Now()
	for _, s := range routers {
		s.blockUDP(t, w.stunPort)
	}
	gaps := make([]time.Duration, len(pairs))
	for i, p := range pairs {
		waitFor(t, 30*time.Second, p.name+" stream flowing again after blocking UDP", func() bool {
			g, ok := p.s.gapAfter(blocked)
			gaps[i] = g
			return ok
		})
	}
	time.Sleep(500 * time.Millisecond)
	unblocked := time.Now()
	for _, s := range routers {
		s.unblockUDP(t)
	}
	var wg sync.WaitGroup
	ret := make([]time.Duration, len(pairs))
	fails := make([]string, len(pairs))
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(unblocked) < 30*time.Second {
				if p.direct() {
					ret[i] = time.Since(unblocked)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			fails[i] = p.name + ": no direct path within 30 s of unblocking"
		}()
	}
	wg.Wait()
	for i, p := range pairs {
		if fails[i] != "" {
			t.Error(fails[i])
			continue
		}
		g, _ := p.s.gapAfter(unblocked)
		figure(t, "%-24s failover gap %.2f s, return to direct %.2f s after unblocking (longest gap while returning %.2f s)",
			p.name, gaps[i].Seconds(), ret[i].Seconds(), g.Seconds())
	}
}
