// Command controlserver runs Tailscale's own test control server
// (tailscale.com/tstest/integration/testcontrol) on a plain-HTTP listener so
// tailwarden's C++ ts2021 client can be tested against the real protocol code.
//
// It prints "URL http://ADDR" on stdout once it listens, then reads commands,
// one per line, from stdin and answers each with one line on stdout:
//
//	addfake          add a fake peer node; prints "FAKE <nodekey>"
//	nodes            prints "NODES <json array of tailcfg.Node>"
//	node <nodekey>   prints "NODE <json tailcfg.Node>" or "NODE null"
//	push <nodekey>   UpdateNode with the node as stored: pushes a map to every node
//	raw <nodekey> <json MapResponse>
//	                 queues a raw MapResponse for that node; prints "RAW true|false"
//	completeauth <url>
//	                 completes an interactive login; prints "AUTH true|false"
//	quit             exits
//
// Closing stdin also exits, so a test that dies takes the server with it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (plain HTTP)")
	authKey := flag.String("authkey", "", "if set, registration requires exactly this auth key")
	requireAuth := flag.Bool("requireauth", false, "interactive AuthURL flow (complete with completeauth)")
	verbose := flag.Bool("v", false, "log testcontrol's activity to stderr")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	base := "http://" + ln.Addr().String()
	srv := &testcontrol.Server{
		ExplicitBaseURL: base,
		RequireAuthKey:  *authKey,
		RequireAuth:     *requireAuth,
		Verbose:         *verbose,
		Logf:            log.Printf,
		AllOnline:       true,
		DERPMap: &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
			1: {RegionID: 1, RegionCode: "test", RegionName: "test",
				Nodes: []*tailcfg.DERPNode{{Name: "t1", RegionID: 1,
					HostName: "127.0.0.1", IPv4: "127.0.0.1", IPv6: "none",
					DERPPort: 1, STUNPort: -1, InsecureForTests: true}}},
		}},
	}
	go func() {
		if err := http.Serve(ln, srv); err != nil {
			log.Fatalf("serve: %v", err)
		}
	}()
	fmt.Printf("URL %s\n", base)

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "addfake":
			before := map[key.NodePublic]bool{}
			for _, n := range srv.AllNodes() {
				before[n.Key] = true
			}
			srv.AddFakeNode()
			added := "none"
			for _, n := range srv.AllNodes() {
				if !before[n.Key] {
					added = n.Key.String()
				}
			}
			fmt.Printf("FAKE %s\n", added)
		case "nodes":
			b, _ := json.Marshal(srv.AllNodes())
			fmt.Printf("NODES %s\n", b)
		case "node":
			var k key.NodePublic
			if len(f) < 2 || k.UnmarshalText([]byte(f[1])) != nil {
				fmt.Printf("NODE null\n")
				continue
			}
			b, _ := json.Marshal(srv.Node(k))
			fmt.Printf("NODE %s\n", b)
		case "push":
			var k key.NodePublic
			n := (*tailcfg.Node)(nil)
			if len(f) >= 2 && k.UnmarshalText([]byte(f[1])) == nil {
				n = srv.Node(k)
			}
			if n == nil {
				fmt.Printf("PUSH false\n")
				continue
			}
			srv.UpdateNode(n)
			fmt.Printf("PUSH true\n")
		case "raw":
			var k key.NodePublic
			var mr tailcfg.MapResponse
			rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "raw"))
			sp := strings.IndexByte(rest, ' ')
			if sp < 0 || k.UnmarshalText([]byte(rest[:sp])) != nil || json.Unmarshal([]byte(rest[sp+1:]), &mr) != nil {
				fmt.Printf("RAW false\n")
				continue
			}
			fmt.Printf("RAW %v\n", srv.AddRawMapResponse(k, &mr))
		case "completeauth":
			ok := len(f) >= 2 && srv.CompleteAuth(f[1])
			fmt.Printf("AUTH %v\n", ok)
		case "quit":
			os.Exit(0)
		default:
			fmt.Printf("ERR unknown command %q\n", f[0])
		}
	}
}
