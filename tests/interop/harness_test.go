package interop

import (
	"fmt"
	"testing"
	"time"

	"tailscale.com/ipn/ipnstate"
)

// figure prints a result line that run.sh collects into the summary table.
func figure(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	t.Log("FIGURE " + t.Name() + ": " + msg)
	fmt.Printf("FIGURE %s: %s\n", t.Name(), msg)
}

// The harness itself, with Go nodes only: tsnet and a tailscaled in its namespace reach
// each other directly (so a failure elsewhere is about tailwarden, not the harness).
func TestHarnessGoOnly(t *testing.T) {
	w := newWorld(t, tailscaleDERP)
	s := hostSite(t, "ts", "198.18.0.3") // before tsnet: see startTsnet
	g := w.startTsnet("gotsnet")
	ts := w.startTailscaled("ts1", s)
	var r *ipnstate.PingResult
	took := waitFor(t, 20*time.Second, "tsnet->tailscaled direct pong", func() bool {
		res, err := g.ping(t, ts.ip4(t), 3*time.Second)
		r = res
		return err == nil && res.Err == "" && res.Endpoint != ""
	})
	figure(t, "tsnet->tailscaled direct pong via %s after %.2f s", r.Endpoint, took.Seconds())
}
