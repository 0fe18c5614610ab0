package ratelimit

import (
	"net/http"
	"net/netip"
	"testing"
)

// FuzzClientIPForged builds the headers of a request that went through a CDN edge and a proxy:
// the client wrote forgedXFF / forgedFwd (anything at all), the edge appended the client's real
// address, the proxy appended the edge's. Whatever the client wrote, the key is the real client's:
// nothing in a client-controlled position is ever returned. With the proxy bypassed, the key is
// the peer's. It never panics.
func FuzzClientIPForged(f *testing.F) {
	f.Add("198.51.100.66", `for=198.51.100.66`, []byte{203, 0, 113, 7}, uint16(4711))
	f.Add(`"[, x`, `for="[2001:db8::1]:80, for=\"`, []byte{0x20, 1, 0xd, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7}, uint16(0))
	f.Add("10.0.0.1, 192.0.2.3", `for=10.0.0.1;by=_x, for=unknown\`, []byte{8, 8, 8, 8}, uint16(1))
	cdn := netip.MustParseAddr(cdnEdge)
	trusted := []netip.Prefix{proxyNet, cdnNet}
	xff, err := NewClientIP(ClientIPOptions{TrustedProxies: trusted, IPv6Prefix: 128})
	if err != nil {
		f.Fatal(err)
	}
	fwd, err := NewClientIP(ClientIPOptions{TrustedProxies: trusted, IPv6Prefix: 128, Header: HeaderForwarded})
	if err != nil {
		f.Fatal(err)
	}
	hops, err := NewClientIP(ClientIPOptions{TrustedHops: 2, IPv6Prefix: 128})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, forgedXFF, forgedFwd string, ip []byte, port uint16) {
		client, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		client = client.Unmap()
		if proxyNet.Contains(client) || cdnNet.Contains(client) {
			return // a client inside the trusted ranges is a proxy, by configuration
		}
		ap := netip.AddrPortFrom(client, port)
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = proxyAddr + ":40000"
		r.Header.Add(HeaderXForwardedFor, forgedXFF+", "+client.String()+", "+cdn.String())
		r.Header.Add(HeaderForwarded, forgedFwd+`, for="`+ap.String()+`";proto=https, for=`+cdn.String())
		for name, c := range map[string]*ClientIP{"XFF": xff, "Forwarded": fwd, "hops": hops} {
			got, err := c.Addr(r)
			if err != nil || got != client {
				t.Fatalf("%s: got %v, %v; want %v\nXFF: %q\nForwarded: %q", name, got, err, client, r.Header.Values(HeaderXForwardedFor), r.Header.Values(HeaderForwarded))
			}
		}
		// The proxy bypassed: the peer is the client, whatever the headers say.
		r.RemoteAddr = ap.String()
		for name, c := range map[string]*ClientIP{"XFF": xff, "Forwarded": fwd} {
			if got, err := c.Addr(r); err != nil || got != client {
				t.Fatalf("%s bypassed: got %v, %v; want %v", name, got, err, client)
			}
		}
	})
}

// FuzzClientIPHeader feeds arbitrary header values and peers: no panic, and the key is either
// the peer's or an address that parses from the header, within MaxKeyLen.
func FuzzClientIPHeader(f *testing.F) {
	f.Add("10.0.0.1:80", "for=\"[::1]:80\", for=_x", "1.2.3.4, [::1]:5")
	f.Add("[::ffff:10.0.0.1]:1", `"\`, ",,,")
	var cs []*ClientIP
	for _, o := range []ClientIPOptions{
		{TrustedProxies: []netip.Prefix{proxyNet, netip.MustParsePrefix("::/0")}},
		{TrustedProxies: []netip.Prefix{proxyNet}, Header: HeaderForwarded},
		{TrustedHops: 3, Header: HeaderForwarded},
		{TrustedHops: 1},
	} {
		c, err := NewClientIP(o)
		if err != nil {
			f.Fatal(err)
		}
		cs = append(cs, c)
	}
	f.Fuzz(func(t *testing.T, remote, fwd, xff string) {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.Header.Set(HeaderForwarded, fwd)
		r.Header.Set(HeaderXForwardedFor, xff)
		for _, c := range cs {
			key, err := c.Key(r)
			if err == nil && (key == "" || len(key) > MaxKeyLen) {
				t.Fatalf("key %q", key)
			}
		}
	})
}
