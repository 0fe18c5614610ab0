package ratelimit

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Addresses of the deployment cases: the real client, what it forges, and the proxies.
const (
	realClient = "203.0.113.7"
	forged     = "198.51.100.66"
	proxyAddr  = "10.0.0.5"   // the load balancer, in 10.0.0.0/8
	cdnEdge    = "192.0.2.10" // a CDN edge, in 192.0.2.0/24
	realV6     = "2001:db8:1:2::7"
	realV6Key  = "2001:db8:1:2::/64"
)

var (
	proxyNet = netip.MustParsePrefix("10.0.0.0/8")
	cdnNet   = netip.MustParsePrefix("192.0.2.0/24")
)

func forwardedRequest(remote, header string, values ...string) *http.Request {
	r := request(remote)
	for _, v := range values {
		r.Header.Add(header, v)
	}
	return r
}

func TestClientIPDeployments(t *testing.T) {
	direct := ClientIPOptions{}
	oneProxy := ClientIPOptions{TrustedProxies: []netip.Prefix{proxyNet}}
	cdnProxy := ClientIPOptions{TrustedProxies: []netip.Prefix{proxyNet, cdnNet}}
	cdnProxyFwd := ClientIPOptions{TrustedProxies: []netip.Prefix{proxyNet, cdnNet}, Header: HeaderForwarded}
	twoHops := ClientIPOptions{TrustedHops: 2}
	xff := HeaderXForwardedFor
	fwd := HeaderForwarded
	peer := proxyAddr + ":40000"
	tests := []struct {
		name   string
		o      ClientIPOptions
		remote string
		header string
		values []string
		want   string
	}{
		{"direct: peer", direct, realClient + ":5000", xff, nil, realClient},
		{"direct: forged XFF ignored", direct, realClient + ":5000", xff, []string{forged}, realClient},
		{"direct: forged Forwarded ignored", direct, realClient + ":5000", fwd, []string{"for=" + forged}, realClient},
		{"direct: IPv6 grouped by /64", direct, "[" + realV6 + "]:5000", xff, nil, realV6Key},
		{"direct: IPv6 neighbour same key", direct, "[2001:db8:1:2:ffff::1]:5000", xff, nil, realV6Key},
		{"direct: IPv4-mapped is IPv4", direct, "[::ffff:" + realClient + "]:5000", xff, nil, realClient},
		{"direct: zone stripped", direct, "[fe80::1%eth0]:5000", xff, nil, "fe80::/64"},

		{"proxy: its entry", oneProxy, peer, xff, []string{realClient}, realClient},
		{"proxy: leftmost forged", oneProxy, peer, xff, []string{forged + ", " + realClient}, realClient},
		{"proxy: forged trusted-looking entries", oneProxy, peer, xff, []string{forged + ", 10.9.9.9, " + realClient}, realClient},
		{"proxy: several header lines", oneProxy, peer, xff, []string{forged, "10.1.1.1, " + forged, realClient}, realClient},
		{"proxy: client-written garbage", oneProxy, peer, xff, []string{`"[, garbage;;` + ", " + realClient}, realClient},
		{"proxy: entry with port", oneProxy, peer, xff, []string{realClient + ":4711"}, realClient},
		{"proxy: IPv6 in brackets with port", oneProxy, peer, xff, []string{"[" + realV6 + "]:4711"}, realV6Key},
		{"proxy: bare IPv6", oneProxy, peer, xff, []string{forged + "," + realV6}, realV6Key},
		{"proxy: IPv4-mapped entry", oneProxy, peer, xff, []string{"::ffff:" + realClient}, realClient},
		{"proxy: no header falls back to the peer", oneProxy, peer, xff, nil, proxyAddr},
		{"proxy: malformed entry falls back to the peer", oneProxy, peer, xff, []string{realClient + ", bogus"}, proxyAddr},
		{"proxy: empty entry falls back to the peer", oneProxy, peer, xff, []string{realClient + ","}, proxyAddr},
		{"proxy bypassed: header ignored", oneProxy, realClient + ":5000", xff, []string{forged}, realClient},
		{"proxy: all trusted gives the leftmost", oneProxy, peer, xff, []string{"10.0.0.9, 10.0.0.8"}, "10.0.0.9"},

		{"cdn+proxy: XFF", cdnProxy, peer, xff, []string{realClient + ", " + cdnEdge}, realClient},
		{"cdn+proxy: XFF leftmost forged", cdnProxy, peer, xff, []string{forged + ", " + forged + ", " + realClient + ", " + cdnEdge}, realClient},
		{"cdn+proxy: forged CDN address", cdnProxy, peer, xff, []string{cdnEdge + ", " + realClient + ", " + cdnEdge}, realClient},
		{"cdn+proxy: Forwarded", cdnProxyFwd, peer, fwd, []string{"for=" + forged + `, for="[` + realV6 + `]:4711";proto=https, for=` + cdnEdge}, realV6Key},
		{"cdn+proxy: Forwarded unbalanced forged quote", cdnProxyFwd, peer, fwd, []string{`for="` + forged + ", for=" + realClient + ";proto=https, for=" + cdnEdge + ";by=_edge"}, realClient},
		{"cdn+proxy: Forwarded quoted IPv4 with port, case", cdnProxyFwd, peer, fwd, []string{`For="` + realClient + `:47011";by=_x`, "for=" + cdnEdge}, realClient},
		{"cdn+proxy: Forwarded obfuscated port", cdnProxyFwd, peer, fwd, []string{`for="[` + realV6 + `]:_p1", for=` + cdnEdge}, realV6Key},
		{"cdn+proxy: Forwarded escaped quote forged", cdnProxyFwd, peer, fwd, []string{`for="a\", for=` + forged + `", for=` + realClient + ", for=" + cdnEdge}, realClient},
		{"cdn+proxy: Forwarded obfuscated node falls back", cdnProxyFwd, peer, fwd, []string{"for=" + forged + ", for=_hidden, for=" + cdnEdge}, proxyAddr},
		{"cdn+proxy: Forwarded unknown falls back", cdnProxyFwd, peer, fwd, []string{"for=unknown, for=" + cdnEdge}, proxyAddr},
		{"cdn+proxy: Forwarded element without for falls back", cdnProxyFwd, peer, fwd, []string{"for=" + realClient + ", proto=https"}, proxyAddr},
		{"cdn+proxy: XFF not read when Forwarded is", cdnProxyFwd, peer, xff, []string{forged}, proxyAddr},

		{"two hops", twoHops, peer, xff, []string{forged + ", " + realClient + ", " + cdnEdge}, realClient},
		{"two hops: too few entries fall back", twoHops, peer, xff, []string{cdnEdge}, proxyAddr},
		{"two hops: malformed falls back", twoHops, peer, xff, []string{"x, " + cdnEdge}, proxyAddr},
		{"IPv6Prefix 48", ClientIPOptions{IPv6Prefix: 48}, "[" + realV6 + "]:1", xff, nil, "2001:db8:1::/48"},
		{"IPv6Prefix 128", ClientIPOptions{IPv6Prefix: 128}, "[" + realV6 + "]:1", xff, nil, realV6},
		{"trusted as IPv4-mapped prefix", ClientIPOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}, peer, xff, []string{realClient}, realClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClientIP(tt.o)
			require.NoError(t, err)
			got, err := c.Key(forwardedRequest(tt.remote, tt.header, tt.values...))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			a, err := c.Addr(forwardedRequest(tt.remote, tt.header, tt.values...))
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(tt.want, a.String()), "Addr %v agrees with Key %v", a, got)
		})
	}
}

func TestClientIPErrors(t *testing.T) {
	c, err := NewClientIP(ClientIPOptions{})
	require.NoError(t, err)
	for _, remote := range []string{"", "nonsense", "203.0.113.7", "@:80"} {
		_, err := c.Key(request(remote))
		assert.ErrorIs(t, err, ErrNoClientAddr, remote)
	}
	_, err = KeyByIP(request("nonsense"))
	assert.ErrorIs(t, err, ErrNoClientAddr)
}

func TestClientIPOptionsValidate(t *testing.T) {
	_, err := NewClientIP(ClientIPOptions{
		TrustedProxies: []netip.Prefix{proxyNet, {}}, TrustedHops: -1, Header: "X-Real-IP", IPv6Prefix: 129,
	})
	require.Error(t, err)
	for _, want := range []string{"ratelimit: ClientIPOptions.TrustedHops -1", "TrustedProxies[1]", `Header "X-Real-IP"`, "IPv6Prefix 129"} {
		assert.ErrorContains(t, err, want)
	}
	assert.ErrorContains(t, ClientIPOptions{TrustedHops: 1, TrustedProxies: []netip.Prefix{proxyNet}}.Validate(), "both set")
	assert.NoError(t, ClientIPOptions{}.Validate())
}

func TestKeysAreBounded(t *testing.T) {
	k, err := NewKeyed(KeyedOptions{Limit: PerMinute(10), SweepInterval: -1})
	require.NoError(t, err)
	defer k.Close()
	long := strings.Repeat("k", MaxKeyLen+1)
	req := request("192.0.2.1:1")
	req.Header.Set("X-Api-Key", long)
	_, err = KeyByHeader("X-Api-Key")(req)
	assert.ErrorIs(t, err, ErrKeyTooLong)
	rec := serve(t, MiddlewareOptions{Limiter: k, Key: func(*http.Request) (string, error) { return long, nil }}, req)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Zero(t, k.Len(), "the long key never reached the limiter")

	// The longest key ClientIP can return fits.
	c, err := NewClientIP(ClientIPOptions{IPv6Prefix: 128})
	require.NoError(t, err)
	key, err := c.Key(request("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe%" + strings.Repeat("z", 1000) + "]:1"))
	require.NoError(t, err)
	assert.LessOrEqual(t, len(key), MaxKeyLen)
}

func TestClientIPAllocs(t *testing.T) {
	c, err := NewClientIP(ClientIPOptions{TrustedProxies: []netip.Prefix{proxyNet, cdnNet}})
	require.NoError(t, err)
	direct := request(realClient + ":5000")
	behind := forwardedRequest(proxyAddr+":1", HeaderXForwardedFor, forged+", "+realClient+", "+cdnEdge)
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = c.Key(direct) }), "direct IPv4 key")
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = c.Addr(behind) }), "Addr behind a CDN and a proxy")
}

func BenchmarkClientIPKeyDirect(b *testing.B) {
	c, _ := NewClientIP(ClientIPOptions{})
	r := request(realClient + ":5000")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = c.Key(r)
	}
}

func BenchmarkClientIPKeyCDNProxy(b *testing.B) {
	c, _ := NewClientIP(ClientIPOptions{TrustedProxies: []netip.Prefix{proxyNet, cdnNet}})
	r := forwardedRequest(proxyAddr+":1", HeaderXForwardedFor, forged+", "+realClient+", "+cdnEdge)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = c.Key(r)
	}
}
