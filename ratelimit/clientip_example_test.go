package ratelimit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/girder-go/girder/ratelimit"
)

// A server behind a CDN (192.0.2.0/24) and a load balancer (10.0.0.0/8): the key is the address
// the CDN edge saw, whatever the client wrote into X-Forwarded-For.
func ExampleClientIP() {
	cip, _ := ratelimit.NewClientIP(ratelimit.ClientIPOptions{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.0/24")},
	})
	for _, xff := range []string{
		"203.0.113.7, 192.0.2.10",                   // edge appended the client, the balancer the edge
		"1.1.1.1, 8.8.8.8, 203.0.113.7, 192.0.2.10", // the client forged two entries
		"[2001:db8:1:2::7]:4711, 192.0.2.10",        // IPv6 keyed by its /64
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "10.0.0.5:40000" // the load balancer
		req.Header.Set("X-Forwarded-For", xff)
		key, _ := cip.Key(req)
		fmt.Println(key)
	}
	// Output:
	// 203.0.113.7
	// 203.0.113.7
	// 2001:db8:1:2::/64
}

// The middleware keyed by ClientIP, for a server reached directly: forwarding headers are
// ignored, so a forged X-Forwarded-For does not buy a fresh bucket.
func ExampleClientIP_Key() {
	cip, _ := ratelimit.NewClientIP(ratelimit.ClientIPOptions{})
	k, _ := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.PerMinute(1)})
	defer k.Close()
	mw, _ := ratelimit.Middleware(ratelimit.MiddlewareOptions{Limiter: k, Key: cip.Key})
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for _, forged := range []string{"1.1.1.1", "2.2.2.2"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "203.0.113.7:5000"
		req.Header.Set("X-Forwarded-For", forged)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// 204
	// 429
}
