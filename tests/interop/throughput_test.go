package interop

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestThroughputPair is not a test but a fixture for bench/throughput.sh: it brings up
// two real tailscaled nodes (kernel TUN, their defaults) and one tailwarden node on one
// backbone segment, waits until each pair it offers talks directly, writes two lines to
// $TW_THROUGHPUT_READY and keeps the nodes running until that file is removed (or 15
// minutes pass):
//
//	pid1 ip1 pid2 ip2     tailscaled <-> tailscaled (pids of the two tailscaled)
//	pid1 ip1 pid3 ip3     tailscaled <-> tailwarden (pid3: our broker, ip3 its TUN address)
//
// The script then runs iperf3 between the namespaces (entered through those pids),
// interleaved with the other tunnels it measures.
func TestThroughputPair(t *testing.T) {
	ready := os.Getenv("TW_THROUGHPUT_READY")
	if ready == "" {
		t.Skip("fixture for bench/throughput.sh (set TW_THROUGHPUT_READY)")
	}
	w := newWorld(t, tailscaleDERP)
	s1, s2 := hostSite(t, "tp1", "198.18.0.3"), hostSite(t, "tp2", "198.18.0.4")
	s3 := hostSite(t, "tp3", "198.18.0.2")
	g1 := w.startTailscaledTUN("tp1", s1, "tp0")
	g2 := w.startTailscaledTUN("tp2", s2, "tp0")
	n3 := w.startTW("tp3", s3)
	n3.waitReady(t, 2)
	ip1, ip2 := g1.ip4(t), g2.ip4(t)
	waitFor(t, 20*time.Second, "tp2 sees tp1", func() bool { return g2.peer(t, g1.key(t)) != nil })
	waitFor(t, 20*time.Second, "tp1 sees tp2", func() bool { return g1.peer(t, g2.key(t)) != nil })
	waitFor(t, 20*time.Second, "tp1 sees tp3", func() bool { return g1.peer(t, n3.nodeKey) != nil })
	// A disco ping that comes back over UDP (not DERP) means the path is direct.
	waitFor(t, 20*time.Second, "direct path", func() bool {
		r, err := g2.ping(t, ip1, 2*time.Second)
		return err == nil && r.Err == "" && r.Endpoint != "" && r.DERPRegionID == 0
	})
	// The mixed pair: direct as seen from both ends.
	goPingUntil(t, g1, n3, "direct", 20*time.Second)
	twPingUntil(t, n3, n3.nameOf(t, g1.key(t)), "direct", 20*time.Second)
	// The namespaces are mounted in this process's mount namespace only (ip netns
	// exec gave it its own), so the script enters them through the daemons' pids.
	pid1, pid2 := pidIn(t, s1.ns, "tailscaled"), pidIn(t, s2.ns, "tailscaled")
	pid3 := pidIn(t, s3.ns, "tailwardend")
	lines := fmt.Sprintf("%s %s %s %s\n%s %s %s %s\n", pid1, ip1, pid2, ip2, pid1, ip1, pid3, n3.ip)
	must(t, os.WriteFile(ready+".tmp", []byte(lines), 0o644))
	must(t, os.Rename(ready+".tmp", ready))
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(ready); os.IsNotExist(err) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pidIn returns the pid of the process called comm in namespace ns.
func pidIn(t testing.TB, ns, comm string) string {
	for _, p := range strings.Fields(run(t, "ip", "netns", "pids", ns)) {
		if c, err := os.ReadFile("/proc/" + p + "/comm"); err == nil && strings.TrimSpace(string(c)) == comm {
			return p
		}
	}
	t.Fatalf("no %s in %s", comm, ns)
	return ""
}
