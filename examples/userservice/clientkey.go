package main

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/girder-go/girder/ratelimit"
)

// trustedProxiesEnv names the environment variable that gives -trusted-proxies its default.
const trustedProxiesEnv = "USERSERVICE_TRUSTED_PROXIES"

// parseTrustedProxies parses a comma-separated list of addresses and prefixes
// ("10.0.0.0/8, 192.0.2.7") into prefixes; "" is none.
func parseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or prefix", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// newRateLimitKey returns the function that names the client a request counts against: its API
// key, or its IP address as ratelimit.ClientIP finds it behind the trusted proxies (none: the
// peer address, forwarding headers ignored).
func newRateLimitKey(trusted []netip.Prefix) (func(*http.Request) (string, error), error) {
	cip, err := ratelimit.NewClientIP(ratelimit.ClientIPOptions{TrustedProxies: trusted})
	if err != nil {
		return nil, err
	}
	return func(r *http.Request) (string, error) {
		if k := r.Header.Get(apiKeyHeader); k != "" {
			return "key:" + k, nil
		}
		ip, err := cip.Key(r)
		return "ip:" + ip, err
	}, nil
}
