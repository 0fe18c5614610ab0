package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientIPBehindReverseProxy puts a real httputil.ReverseProxy in front of a limited server:
// one client (from 127.0.0.2) sends 1,000 requests, each with a different forged
// X-Forwarded-For. Keyed by ClientIP, trusting the proxy (127.0.0.1), they are limited as one
// client: the burst of 10 passes and the rest get 429. Keyed by the leftmost entry, as naive code
// does, every request would pass.
func TestClientIPBehindReverseProxy(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)

	cip, err := NewClientIP(ClientIPOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	require.NoError(t, err)
	leftmost := func(r *http.Request) (string, error) {
		first, _, _ := strings.Cut(r.Header.Get(HeaderXForwardedFor), ",")
		return first, nil
	}
	tests := []struct {
		name          string
		key           func(*http.Request) (string, error)
		admitted, ids int
	}{
		{"ClientIP", cip.Key, 10, 1},
		{"leftmost X-Forwarded-For (unsafe)", leftmost, 1000, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKeyed(KeyedOptions{Limit: PerHour(10), SweepInterval: -1})
			require.NoError(t, err)
			defer k.Close()
			mw, err := Middleware(MiddlewareOptions{Limiter: k, Key: tt.key})
			require.NoError(t, err)
			backend := httptest.NewServer(mw(okHandler))
			defer backend.Close()
			target, err := url.Parse(backend.URL)
			require.NoError(t, err)
			proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
			defer proxy.Close()

			// The client dials from 127.0.0.2, an address the server does not trust.
			dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
			client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
			codes := map[int]int{}
			for range 1000 {
				req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, proxy.URL, nil)
				require.NoError(t, err)
				req.Header.Set(HeaderXForwardedFor, fmt.Sprintf("%d.%d.%d.%d", rng.IntN(223)+1, rng.IntN(256), rng.IntN(256), rng.IntN(256)))
				resp, err := client.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				codes[resp.StatusCode]++
			}
			client.CloseIdleConnections()
			assert.Equal(t, tt.admitted, codes[http.StatusNoContent], "seed %d: codes %v", seed, codes)
			assert.Equal(t, 1000-tt.admitted, codes[http.StatusTooManyRequests], "seed %d", seed)
			assert.LessOrEqual(t, k.Len(), tt.ids)
			t.Logf("%v", codes)
		})
	}
}

// TestKeyedBoundedUnderClientIPFlood: a flood of distinct keys through ClientIP stays within
// MaxKeys, and addresses a client can rotate through (one IPv6 /64, forged headers) make one key.
func TestKeyedBoundedUnderClientIPFlood(t *testing.T) {
	cip, err := NewClientIP(ClientIPOptions{TrustedProxies: []netip.Prefix{proxyNet}})
	require.NoError(t, err)
	tests := []struct {
		name    string
		req     func(i int) *http.Request
		maxKeys int
		want    int
	}{
		{"one /64, 10,000 addresses", func(i int) *http.Request {
			return request(fmt.Sprintf("[2001:db8:1:2:%x:%x::1]:1", i>>8, i&0xff))
		}, 100, 1},
		{"one client behind the proxy, 10,000 forged XFF", func(i int) *http.Request {
			return forwardedRequest(proxyAddr+":1", HeaderXForwardedFor, fmt.Sprintf("198.51.%d.%d, %s", i>>8, i&0xff, realClient))
		}, 100, 1},
		{"10,000 distinct /64s", func(i int) *http.Request {
			return request(fmt.Sprintf("[2001:db8:%x:%x::1]:1", i>>8, i&0xff))
		}, 100, 100},
		{"10,000 distinct IPv4 clients behind the proxy", func(i int) *http.Request {
			return forwardedRequest(proxyAddr+":1", HeaderXForwardedFor, fmt.Sprintf("203.0.%d.%d", i>>8, i&0xff))
		}, 100, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKeyed(KeyedOptions{Limit: PerMinute(5), MaxKeys: tt.maxKeys, SweepInterval: -1})
			require.NoError(t, err)
			defer k.Close()
			mw, err := Middleware(MiddlewareOptions{Limiter: k, Key: cip.Key})
			require.NoError(t, err)
			h := mw(okHandler)
			admitted := 0
			for i := range 10_000 {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, tt.req(i))
				if rec.Code == http.StatusNoContent {
					admitted++
				}
				require.LessOrEqual(t, k.Len(), tt.maxKeys)
			}
			assert.Equal(t, tt.want, k.Len())
			if tt.want == 1 {
				assert.Equal(t, 5, admitted, "one client, one bucket")
			}
		})
	}
}
