// Interop harness: real Tailscale code (testcontrol, derpserver, STUN, tsnet, tailscaled)
// against tailwarden nodes started as users start them. See tests/interop/README.md.
//
// The test binary runs as root. TestMain creates one network namespace (the "backbone":
// a bridge at 198.18.0.1/24 with no route anywhere else), then re-executes itself inside
// it, so that everything in-process (control, DERP, STUN, tsnet) lives on the test
// network only. Each node (tailwardend, tailscaled) gets its own namespace on the bridge,
// optionally behind an nft masquerade router. The re-exec also sets Tailscale's envknobs,
// which are read once at package init.
package interop

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	roleEnv    = "TW_INTEROP_ROLE"
	backboneIP = "198.18.0.1"
)

// Environment for every Tailscale component (in-process and tailscaled): nothing may
// leave the test network, and logs are never uploaded.
var tsEnv = []string{
	"TS_DISABLE_PORTMAPPER=1",
	"TS_ASSUME_NETWORK_UP_FOR_TEST=1",
	"TS_PANIC_IF_HIT_MAIN_CONTROL=1",
	"TS_NO_LOGS_NO_SUPPORT=1",
}

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "inner":
		os.Exit(m.Run())
	case "echo":
		os.Exit(echoServer(os.Getenv("TW_ECHO_LISTEN")))
	case "dial":
		os.Exit(dialOnce(os.Getenv("TW_ECHO_DIAL"), os.Getenv("TW_ECHO_MSG")))
	case "udpecho":
		os.Exit(udpEcho(os.Getenv("TW_ECHO_LISTEN")))
	case "udpstream":
		os.Exit(udpStream(os.Getenv("TW_ECHO_DIAL")))
	}
	os.Exit(outer())
}

// outer builds the backbone namespace, runs the tests inside it, and removes every
// namespace this run created (killing only processes inside them).
func outer() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "interop: must run as root (network namespaces)")
		return 1
	}
	prefix := fmt.Sprintf("i16-%d-", os.Getpid())
	ns := prefix + "bb"
	defer cleanupNamespaces(prefix)
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "add", "br0", "type", "bridge"},
		{"-n", ns, "addr", "add", backboneIP + "/24", "dev", "br0"},
		{"-n", ns, "link", "set", "br0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "interop: ip %s: %v: %s\n", strings.Join(args, " "), err, out)
			return 1
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), roleEnv+"=inner", "TW_INTEROP_PREFIX="+prefix, "TW_INTEROP_BACKBONE="+ns)
	cmd.Env = append(cmd.Env, tsEnv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	go func() {
		for s := range sig {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return max(ee.ExitCode(), 1)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	return 0
}

// cleanupNamespaces kills the processes inside every namespace named with prefix and
// deletes those namespaces.
func cleanupNamespaces(prefix string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", f[0]).Output()
		for _, p := range strings.Fields(string(pids)) {
			var pid int
			if _, err := fmt.Sscan(p, &pid); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = exec.Command("ip", "netns", "del", f[0]).Run()
	}
}

// echoServer is a helper process (run inside a node's namespace): a TCP server that
// echoes each line back, prefixed with "echo:".
func echoServer(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		return 1
	}
	fmt.Println("listening", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		go func(c net.Conn) {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := io.WriteString(c, "echo:"+line); err != nil {
					return
				}
			}
		}(c)
	}
}

// dialOnce is a helper process: connects to addr, sends msg and a newline, and prints
// the reply line.
func dialOnce(addr, msg string) int {
	c, err := net.DialTimeout("tcp", addr, 10*1e9)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 1
	}
	defer c.Close()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 1
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 1
	}
	fmt.Print(line)
	return 0
}

// udpEcho is a helper process: a UDP server that sends every datagram back.
func udpEcho(addr string) int {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpecho:", err)
		return 1
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpecho:", err)
		return 1
	}
	fmt.Println("listening", c.LocalAddr())
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return 1
		}
		c.WriteToUDP(buf[:n], from)
	}
}

// udpStream is a helper process: sends a numbered datagram to addr every 20 ms until
// killed and prints one line per echoed datagram ("<seq>"), so the harness can time
// the replies as they arrive.
func udpStream(addr string) int {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpstream:", err)
		return 1
	}
	go func() {
		var b [8]byte
		for seq := uint64(1); ; seq++ {
			for i := range b {
				b[i] = byte(seq >> (8 * i))
			}
			c.Write(b[:])
			time.Sleep(20 * time.Millisecond)
		}
	}()
	out := bufio.NewWriter(os.Stdout)
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil {
			continue // ICMP unreachable while the path is down: keep going
		}
		if n >= 8 {
			var seq uint64
			for i := 7; i >= 0; i-- {
				seq = seq<<8 | uint64(buf[i])
			}
			fmt.Fprintln(out, seq)
			out.Flush()
		}
	}
}
