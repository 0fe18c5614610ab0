package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/girder-go/girder/ratelimit"
)

func init() { register(ratelimitClientIPRows) }

func ratelimitClientIPRows(*Env) []Row {
	return []Row{
		{Package: "ratelimit", Op: "client key, direct (ClientIP.Key)", Girder: ratelimitClientIPDirect,
			Peer: "net.SplitHostPort of RemoteAddr (KeyByIP)", PeerFn: ratelimitSplitHostPort},
		{Package: "ratelimit", Op: "client key, X-Forwarded-For behind CDN + proxy", Girder: ratelimitClientIPCDN,
			Peer: "hand-rolled: strings.Split, net.ParseIP, IPNet.Contains", PeerFn: ratelimitHandRolledXFF},
	}
}

var (
	ratelimitTrusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.0/24")}
	ratelimitCDNXFF  = "198.51.100.66, 203.0.113.7, 192.0.2.10"
)

func ratelimitReq(remote, xff string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	if xff != "" {
		r.Header.Set("X-Forwarded-For", xff)
	}
	return r
}

func ratelimitClientIPDirect(b *testing.B) {
	c, err := ratelimit.NewClientIP(ratelimit.ClientIPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	r := ratelimitReq("203.0.113.7:5000", "")
	b.ReportAllocs()
	for b.Loop() {
		if k, _ := c.Key(r); k != "203.0.113.7" {
			b.Fatal(k)
		}
	}
}

func ratelimitSplitHostPort(b *testing.B) {
	r := ratelimitReq("203.0.113.7:5000", "")
	b.ReportAllocs()
	for b.Loop() {
		if h, _, _ := net.SplitHostPort(r.RemoteAddr); h != "203.0.113.7" {
			b.Fatal(h)
		}
	}
}

func ratelimitClientIPCDN(b *testing.B) {
	c, err := ratelimit.NewClientIP(ratelimit.ClientIPOptions{TrustedProxies: ratelimitTrusted})
	if err != nil {
		b.Fatal(err)
	}
	r := ratelimitReq("10.0.0.5:40000", ratelimitCDNXFF)
	b.ReportAllocs()
	for b.Loop() {
		if k, _ := c.Key(r); k != "203.0.113.7" {
			b.Fatal(k)
		}
	}
}

// ratelimitHandRolledXFF is the parser services write by hand: split the header, walk it from
// the right with net.ParseIP, skip trusted networks.
func ratelimitHandRolledXFF(b *testing.B) {
	var nets []*net.IPNet
	for _, s := range []string{"10.0.0.0/8", "192.0.2.0/24"} {
		_, n, _ := net.ParseCIDR(s)
		nets = append(nets, n)
	}
	trusted := func(ip net.IP) bool {
		for _, n := range nets {
			if n.Contains(ip) {
				return true
			}
		}
		return false
	}
	key := func(r *http.Request) string {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip == nil || !trusted(ip) {
			return host
		}
		parts := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
		for i := len(parts) - 1; i >= 0; i-- {
			ip := net.ParseIP(strings.TrimSpace(parts[i]))
			if ip == nil {
				return host
			}
			if !trusted(ip) {
				return ip.String()
			}
		}
		return host
	}
	r := ratelimitReq("10.0.0.5:40000", ratelimitCDNXFF)
	b.ReportAllocs()
	for b.Loop() {
		if k := key(r); k != "203.0.113.7" {
			b.Fatal(k)
		}
	}
}
