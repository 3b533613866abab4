package interop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tailscale.com/derp/derpserver"
	"tailscale.com/net/stunserver"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
)

// ---- namespaces ----------------------------------------------------------------------

var (
	nsPrefix   = os.Getenv("TW_INTEROP_PREFIX")
	backboneNS = os.Getenv("TW_INTEROP_BACKBONE")
	vethSeq    atomic.Int64
)

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func nft(t testing.TB, ns, rules string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s\n%s", ns, err, out, rules)
	}
}

// newNS creates an empty namespace (loopback up) removed at the end of the test, after
// killing what runs inside it.
func newNS(t testing.TB, name string) string {
	t.Helper()
	ns := fmt.Sprintf("%s%s-%d", nsPrefix, name, vethSeq.Add(1))
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { cleanupNamespaces(ns) })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// attach links namespace ns (interface ifname, address ip/24) to the backbone bridge.
func attach(t testing.TB, ns, ifname, ip string) {
	t.Helper()
	peer := fmt.Sprintf("bv%d", vethSeq.Add(1))
	run(t, "ip", "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", peer, "netns", backboneNS)
	// Removed before the namespace (cleanups run last-in first-out): deleting a
	// namespace frees its veths asynchronously, and a backbone link vanishing during
	// the next test is a link change for that test's tsnet, which then drops its
	// control connection and insists on port 443 (see startTsnet).
	t.Cleanup(func() { _ = exec.Command("ip", "-n", backboneNS, "link", "del", peer).Run() })
	run(t, "ip", "-n", backboneNS, "link", "set", peer, "master", "br0", "up")
	run(t, "ip", "-n", ns, "addr", "add", ip+"/24", "dev", ifname)
	run(t, "ip", "-n", ns, "link", "set", ifname, "up")
}

// site is where a node runs: its namespace, its own address, and (behind NAT) the
// router's namespace and public address.
type site struct {
	ns       string
	ip       string // the node's own address
	publicIP string // as the backbone sees it
	router   string // "" on the backbone
}

// hostSite puts a node directly on the backbone at ip.
func hostSite(t testing.TB, name, ip string) *site {
	ns := newNS(t, name)
	attach(t, ns, "eth0", ip)
	return &site{ns: ns, ip: ip, publicIP: ip}
}

// natSite puts a node at lan.2 behind a router whose backbone address is wanIP and
// which masquerades with endpoint-independent mapping (Linux masquerade keeps the
// source port when it can), and drops unsolicited inbound connections like a home
// router.
func natSite(t testing.TB, name, wanIP, lan string) *site {
	r := newNS(t, name+"r")
	n := newNS(t, name)
	attach(t, r, "wan0", wanIP)
	run(t, "ip", "link", "add", "lan0", "netns", r, "type", "veth", "peer", "name", "eth0", "netns", n)
	run(t, "ip", "-n", r, "addr", "add", lan+".1/24", "dev", "lan0")
	run(t, "ip", "-n", r, "link", "set", "lan0", "up")
	run(t, "ip", "-n", n, "addr", "add", lan+".2/24", "dev", "eth0")
	run(t, "ip", "-n", n, "link", "set", "eth0", "up")
	run(t, "ip", "-n", n, "route", "add", "default", "via", lan+".1")
	run(t, "ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	nft(t, r, `table ip i16nat {
  chain post { type nat hook postrouting priority srcnat; policy accept; oifname "wan0" masquerade; }
}
table ip i16fw {
  chain input { type filter hook input priority filter; policy accept; iifname "wan0" ct state new drop; }
}`)
	return &site{ns: n, ip: lan + ".2", publicIP: wanIP, router: r}
}

// blockUDP drops the site's UDP except STUN to the backbone host (DERP is TCP), so the
// node can reach peers only through DERP. At a router it drops forwarded UDP; on a
// backbone host, its own.
func (s *site) blockUDP(t testing.TB, stunPort int) {
	t.Helper()
	ns, hookOut, hookIn := s.ns, "output", "input"
	if s.router != "" {
		ns, hookOut, hookIn = s.router, "forward", "forward"
	}
	nft(t, ns, fmt.Sprintf(`table inet i16block {
  chain out { type filter hook %s priority filter - 10; policy accept;
    oifname "lo" accept
    ip daddr %s udp dport %d accept
    ip saddr %s udp sport %d accept
    meta l4proto udp drop
  }
  chain in { type filter hook %s priority filter - 10; policy accept;
    iifname "lo" accept
    ip saddr %s udp sport %d accept
    ip daddr %s udp dport %d accept
    meta l4proto udp drop
  }
}`, hookOut, backboneIP, stunPort, backboneIP, stunPort, hookIn, backboneIP, stunPort, backboneIP, stunPort))
}

func (s *site) unblockUDP(t testing.TB) {
	t.Helper()
	ns := s.ns
	if s.router != "" {
		ns = s.router
	}
	run(t, "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "i16block")
}

// ---- control, DERP, STUN -------------------------------------------------------------

// world is one tailnet: Tailscale's testcontrol with an explicit DERP map, a DERP relay
// (Tailscale's derpserver in-process, or our tailwarden-derper) and Tailscale's STUN
// server, all on the backbone address.
type world struct {
	t        testing.TB
	control  *testcontrol.Server
	url      string
	derpMap  *tailcfg.DERPMap
	region   int
	stunPort int
	dir      string
	nextID   atomic.Int64
}

// fileLogf returns a logf that appends to dir/name (kept for failure analysis).
func fileLogf(t testing.TB, path string) func(string, ...any) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	t.Cleanup(func() { mu.Lock(); f.Close(); f = nil; mu.Unlock() })
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if f != nil {
			fmt.Fprintf(f, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
		}
	}
}

// testDir is a world-readable directory for the test's files (tailwarden's children run
// as nobody), kept under $TW_INTEROP_KEEP if set, else removed.
func testDir(t testing.TB) string {
	base := os.Getenv("TW_INTEROP_KEEP")
	if base == "" {
		base = os.TempDir()
	}
	d, err := os.MkdirTemp(base, "tw-interop-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() {
		if os.Getenv("TW_INTEROP_KEEP") == "" && !t.Failed() {
			os.RemoveAll(d)
		} else {
			t.Logf("files kept in %s", d)
		}
	})
	return d
}

type derpKind int

const (
	tailscaleDERP derpKind = iota
	tailwardenDERP
)

func newWorld(t testing.TB, dk derpKind) *world {
	w := &world{t: t, dir: testDir(t)}
	w.nextID.Store(100)
	logf := fileLogf(t, filepath.Join(w.dir, "control.log"))

	stunCtx, stunStop := context.WithCancel(context.Background())
	t.Cleanup(stunStop)
	stun := stunserver.New(stunCtx)
	if err := stun.Listen(backboneIP + ":0"); err != nil {
		t.Fatal(err)
	}
	go stun.Serve()
	w.stunPort = stun.LocalAddr().(*net.UDPAddr).Port

	var derpPort int
	switch dk {
	case tailscaleDERP:
		w.region = 1
		d := derpserver.New(key.NewNode(), logf)
		ln, err := net.Listen("tcp", backboneIP+":0")
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(derpserver.Handler(d))
		srv.Listener.Close()
		srv.Listener = ln
		srv.Config.ErrorLog = log.New(logWriter(logf), "derp: ", 0)
		srv.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		srv.StartTLS()
		t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); d.Close() })
		derpPort = ln.Addr().(*net.TCPAddr).Port
	case tailwardenDERP:
		w.region = 900
		derpPort = w.startOurDerper()
	}
	code := map[int]string{1: "test", 900: "twlab"}[w.region]
	w.derpMap = &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
		w.region: {RegionID: w.region, RegionCode: code, RegionName: code, Nodes: []*tailcfg.DERPNode{{
			Name: fmt.Sprintf("%da", w.region), RegionID: w.region, HostName: backboneIP,
			IPv4: backboneIP, IPv6: "none", STUNTestIP: backboneIP,
			STUNPort: w.stunPort, DERPPort: derpPort, InsecureForTests: true,
		}}},
	}}

	w.control = &testcontrol.Server{DERPMap: w.derpMap, AllOnline: true, Logf: logf}
	ln, err := net.Listen("tcp", backboneIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(w.control)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Config.ErrorLog = log.New(logWriter(logf), "control: ", 0)
	hs.Start()
	w.control.HTTPTestServer = hs
	t.Cleanup(func() { hs.CloseClientConnections(); hs.Close() })
	w.url = hs.URL
	return w
}

type logWriter func(string, ...any)

func (l logWriter) Write(p []byte) (int, error) {
	l("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startOurDerper runs tests/support/derper's tailwarden-derper (TLS, a self-signed
// certificate for the backbone IP) on the backbone and returns its port.
func (w *world) startOurDerper() int {
	t := w.t
	certPEM, keyPEM := selfSignedCert(t, backboneIP)
	crt, keyf := filepath.Join(w.dir, "derp.crt"), filepath.Join(w.dir, "derp.key")
	must(t, os.WriteFile(crt, certPEM, 0o644))
	must(t, os.WriteFile(keyf, keyPEM, 0o600))
	port := freeTCPPort(t)
	cmd := exec.Command(filepath.Join(twBin(t), "tailwarden-derper"), "--listen", fmt.Sprintf("%s:%d", backboneIP, port),
		"--tls-cert", crt, "--tls-key", keyf, "--key-file", filepath.Join(w.dir, "derp.server.key"))
	startLogged(t, cmd, filepath.Join(w.dir, "tailwarden-derper.log"))
	waitTCP(t, fmt.Sprintf("%s:%d", backboneIP, port), 10*time.Second)
	return port
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func freeTCPPort(t testing.TB) int {
	ln, err := net.Listen("tcp", backboneIP+":0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitTCP(t testing.TB, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after %v: %v", addr, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startLogged starts cmd with output to logPath and stops it (by PID) at cleanup.
func startLogged(t testing.TB, cmd *exec.Cmd, logPath string) {
	t.Helper()
	f, err := os.Create(logPath)
	must(t, err)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
}

func selfSignedCert(t testing.TB, ip string) (certPEM, keyPEM []byte) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: ip},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(48 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP(ip)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	must(t, err)
	kder, err := x509.MarshalECPrivateKey(priv)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// twBin is the directory of tailwarden's binaries (TW_BIN, default build/default/bin).
func twBin(t testing.TB) string {
	d := os.Getenv("TW_BIN")
	if d == "" {
		d = "../../build/default/bin"
	}
	d, _ = filepath.Abs(d)
	if _, err := os.Stat(filepath.Join(d, "tailwardend")); err != nil {
		t.Fatalf("tailwarden binaries not found in %s (set TW_BIN): %v", d, err)
	}
	return d
}

// tsBin is the directory of tailscaled and tailscale built from this module (TS_BIN).
func tsBin(t testing.TB) string {
	d := os.Getenv("TS_BIN")
	if d == "" {
		t.Fatal("TS_BIN (directory of tailscaled and tailscale built from tests/interop/go.mod) not set; use tests/interop/run.sh")
	}
	d, _ = filepath.Abs(d)
	return d
}

// waitFor polls cond every 20 ms until it holds (returns the time taken) or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timeout after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
