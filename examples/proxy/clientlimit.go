package main

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/girder-go/girder/ratelimit"
)

// clientLimit wraps h in a per-client rate limit of rate requests per second (burst twice
// that), the client named by ratelimit.ClientIP: the peer address, or, when the peer is one of
// the trusted proxies (a CDN or load balancer in front of this proxy), the rightmost
// X-Forwarded-For entry that is not. A client cannot forge its way to a fresh bucket. It
// returns h itself when rate is 0, and a close function for the limiter's sweeper. m, when not
// nil, counts the limiter's decisions and reads its number of clients at scrape time.
func clientLimit(h http.Handler, rate float64, trusted string, m *metrics) (http.Handler, func(), error) {
	if rate == 0 {
		return h, func() {}, nil
	}
	prefixes, err := parsePrefixes(trusted)
	if err != nil {
		return nil, nil, err
	}
	cip, err := ratelimit.NewClientIP(ratelimit.ClientIPOptions{TrustedProxies: prefixes})
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: %w", err)
	}
	k, err := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.Limit{Rate: rate, Burst: max(1, int(2*rate))}})
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: -client-rate: %w", err)
	}
	d, err := m.clientDecider(k)
	if err != nil {
		k.Close()
		return nil, nil, err
	}
	mw, err := ratelimit.Middleware(ratelimit.MiddlewareOptions{Limiter: d, Key: cip.Key, Policy: "client"})
	if err != nil {
		k.Close()
		return nil, nil, err
	}
	return mw(h), func() { k.Close() }, nil
}

// parsePrefixes parses "10.0.0.0/8, 192.0.2.7" (prefixes or single addresses); "" is none.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("proxy: -trusted-proxies: %q is not an address or prefix", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
