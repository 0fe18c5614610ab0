package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// MaxKeyLen is the longest key the middleware accepts (in bytes): a longer one fails with
// ErrKeyTooLong, so a huge header cannot become a huge map entry or Redis key.
const MaxKeyLen = 256

var (
	// ErrNoClientAddr reports a request whose peer address (RemoteAddr) is not an IP address and
	// port, so no client address can be named.
	ErrNoClientAddr = errors.New("ratelimit: no client address")
	// ErrKeyTooLong reports a key longer than MaxKeyLen.
	ErrKeyTooLong = errors.New("ratelimit: key too long")
)

// Forwarding headers ClientIP can read.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded" // RFC 7239
)

// ClientIPOptions says where a server stands, so that ClientIP can name the client without
// believing anything the client wrote. The zero value is right for a server that clients reach
// directly: the key is the peer address and forwarding headers are ignored.
type ClientIPOptions struct {
	// TrustedProxies are the addresses of the proxies in front of this server (load balancers,
	// CDN edges). Their forwarding entries are believed and the client is the rightmost address
	// in the chain that is not one of them. Set this or TrustedHops, not both.
	TrustedProxies []netip.Prefix
	// TrustedHops is the number of proxies every request passes before this server, for
	// deployments that know their depth but not their proxies' addresses: the client is the
	// TrustedHops-th entry from the right of the forwarding header. Set this or TrustedProxies.
	TrustedHops int
	// Header is the forwarding header to read: HeaderXForwardedFor (the default) or
	// HeaderForwarded. Only one is read: a proxy that writes one does not strip the other.
	Header string
	// IPv6Prefix is the length of the prefix an IPv6 client is keyed by, since one subscriber
	// holds a whole /64 (or /56, /48) and could rotate through its addresses. 0 means 64; 128
	// keys each address apart. IPv4 addresses, IPv4-mapped IPv6 ones included, are keyed whole.
	IPv6Prefix int
}

// Validate reports every problem with o, or nil.
func (o ClientIPOptions) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("ratelimit: ClientIPOptions."+format, args...))
	}
	if o.TrustedHops < 0 {
		bad("TrustedHops %d is negative", o.TrustedHops)
	}
	if o.TrustedHops > 0 && len(o.TrustedProxies) > 0 {
		bad("TrustedHops and TrustedProxies are both set; set one")
	}
	for i, p := range o.TrustedProxies {
		if !p.IsValid() {
			bad("TrustedProxies[%d] is not a valid prefix", i)
		}
	}
	if o.Header != "" && o.Header != HeaderXForwardedFor && o.Header != HeaderForwarded {
		bad("Header %q is neither %s nor %s", o.Header, HeaderXForwardedFor, HeaderForwarded)
	}
	if o.IPv6Prefix < 0 || o.IPv6Prefix > 128 {
		bad("IPv6Prefix %d is outside [0, 128]", o.IPv6Prefix)
	}
	return errors.Join(errs...)
}

// ClientIP names the client of a request by its IP address, reading the forwarding header only
// as far as trusted proxies wrote it. Entries to the left of the first address that is not a
// trusted proxy are written by the client (any client can send X-Forwarded-For: 1.2.3.4) and are
// never read, so a client that forges a different address on every request still gets one key.
//
// When the header is missing, or an entry a trusted proxy wrote is not an address (RFC 7239's
// "unknown" and obfuscated identifiers such as "_hidden" included), the client is the peer
// address: the requests share the proxy's key rather than trusting anything else.
//
// A ClientIP is immutable and safe for concurrent use. Addr allocates nothing; Key allocates its
// string, except for a direct IPv4 client. Both read the header from the right and stop at the
// client, so their cost grows with the number of trusted hops, not with the header's length.
type ClientIP struct {
	trusted []netip.Prefix
	hops    int
	header  string
	v6bits  int
}

// NewClientIP returns a ClientIP for o, or o's problems.
func NewClientIP(o ClientIPOptions) (*ClientIP, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c := &ClientIP{hops: o.TrustedHops, header: o.Header, v6bits: o.IPv6Prefix}
	if c.header == "" {
		c.header = HeaderXForwardedFor
	}
	if c.v6bits == 0 {
		c.v6bits = 64
	}
	for _, p := range o.TrustedProxies {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	return c, nil
}

// Key returns the client's rate-limit key: the client address as text, an IPv6 one masked to
// IPv6Prefix bits ("2001:db8:1:2::/64"). Use the method value as MiddlewareOptions.Key.
func (c *ClientIP) Key(r *http.Request) (string, error) {
	a, direct, err := c.addr(r)
	if err != nil {
		return "", err
	}
	if a.Is4() {
		if direct {
			// RemoteAddr's host is the canonical dotted quad: netip rejects every other spelling.
			if i := strings.LastIndexByte(r.RemoteAddr, ':'); i > 0 {
				return r.RemoteAddr[:i], nil
			}
		}
		return a.String(), nil
	}
	if c.v6bits == 128 {
		return a.String(), nil
	}
	return netip.PrefixFrom(a, c.v6bits).String(), nil
}

// Addr returns the client's address: IPv4-mapped IPv6 addresses as IPv4, zones stripped, IPv6
// addresses masked to IPv6Prefix bits. It fails with ErrNoClientAddr only when RemoteAddr is
// not an address and port.
func (c *ClientIP) Addr(r *http.Request) (netip.Addr, error) {
	a, _, err := c.addr(r)
	return a, err
}

// addr also reports whether the address is the peer's, unchanged.
func (c *ClientIP) addr(r *http.Request) (netip.Addr, bool, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("%w: RemoteAddr %q", ErrNoClientAddr, r.RemoteAddr)
	}
	peer := c.normal(ap.Addr())
	direct := peer == ap.Addr()
	switch {
	case c.hops > 0:
		if a, ok := c.byHops(r.Header.Values(c.header)); ok {
			return a, false, nil
		}
	case len(c.trusted) > 0 && c.isTrusted(peer):
		if a, ok := c.byTrust(r.Header.Values(c.header)); ok {
			return a, false, nil
		}
	}
	return c.mask(peer), direct && c.mask(peer) == peer, nil
}

// byHops returns the c.hops-th entry from the right; ok is false when there are fewer entries
// or that one is not an address.
func (c *ClientIP) byHops(lines []string) (netip.Addr, bool) {
	e := entries{lines: lines, forwarded: c.header == HeaderForwarded}
	for range c.hops - 1 {
		if _, ok := e.next(); !ok {
			return netip.Addr{}, false
		}
	}
	v, ok := e.next()
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := parseNode(v)
	if !ok {
		return netip.Addr{}, false
	}
	return c.mask(c.normal(a)), true
}

// byTrust returns the rightmost entry that is not a trusted proxy (or, if all are, the
// leftmost); ok is false when there is no entry or one on the way is not an address.
func (c *ClientIP) byTrust(lines []string) (netip.Addr, bool) {
	e := entries{lines: lines, forwarded: c.header == HeaderForwarded}
	var last netip.Addr
	for {
		v, ok := e.next()
		if !ok {
			return c.mask(last), last.IsValid()
		}
		a, ok := parseNode(v)
		if !ok {
			return netip.Addr{}, false
		}
		a = c.normal(a)
		if !c.isTrusted(a) {
			return c.mask(a), true
		}
		last = a
	}
}

func (c *ClientIP) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// normal strips the zone and turns an IPv4-mapped IPv6 address into IPv4.
func (c *ClientIP) normal(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }

// mask keeps the IPv6Prefix bits of an IPv6 address.
func (c *ClientIP) mask(a netip.Addr) netip.Addr {
	if !a.Is6() || c.v6bits == 128 {
		return a
	}
	p, _ := a.Prefix(c.v6bits)
	return p.Addr()
}

// entries walks the entries of a forwarding header from the right: the last line first, the
// last element of each line first. Walking from the right means only the part trusted proxies
// wrote is read, and client-written text to the left (unbalanced quotes included) cannot change
// how that part splits.
type entries struct {
	lines     []string
	cur       string
	forwarded bool
}

// next returns the next entry from the right: for X-Forwarded-For the element itself, for
// Forwarded the value of its for parameter (unquoted); ok is false when there are no more.
func (e *entries) next() (string, bool) {
	for e.cur == "" {
		if len(e.lines) == 0 {
			return "", false
		}
		e.cur = e.lines[len(e.lines)-1]
		e.lines = e.lines[:len(e.lines)-1]
		if strings.TrimSpace(e.cur) == "" {
			e.cur = ""
		}
	}
	var elem string
	elem, e.cur = lastElement(e.cur)
	elem = strings.TrimSpace(elem)
	if !e.forwarded {
		return elem, true
	}
	return forParam(elem), true
}

// lastElement splits s at its last comma outside a quoted string. An unbalanced quote can only
// make the split come later (further left), in text the caller does not trust anyway.
func lastElement(s string) (elem, rest string) {
	quoted := false
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case '"':
			// A quote preceded by an odd number of backslashes is escaped.
			n := 0
			for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
				n++
			}
			if n%2 == 0 {
				quoted = !quoted
			}
		case ',':
			if !quoted {
				return s[i+1:], s[:i]
			}
		}
	}
	return s, ""
}

// forParam returns the value of the for parameter of one Forwarded element, unquoted, or "" if
// it has none (the element then names no node).
func forParam(elem string) string {
	for elem != "" {
		var pair string
		pair, elem = cutUnquoted(elem, ';')
		name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "for") {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
			if strings.IndexByte(value, '\\') >= 0 {
				value = unescape(value)
			}
		}
		return value
	}
	return ""
}

// cutUnquoted cuts s at the first sep outside a quoted string.
func cutUnquoted(s string, sep byte) (before, after string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func unescape(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b = append(b, s[i])
	}
	return string(b)
}

// parseNode parses one node of a forwarding header: an IPv4 address or an IPv6 one in brackets,
// each optionally with a port, which RFC 7239 allows to be obfuscated ("192.0.2.1:8080",
// "[2001:db8::1]:_p1"), or a bare IPv6 address as X-Forwarded-For writes it. "unknown" and
// obfuscated identifiers ("_hidden") are not addresses.
func parseNode(s string) (netip.Addr, bool) {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || (end+1 < len(s) && s[end+1] != ':') {
			return netip.Addr{}, false
		}
		host = s[1:end]
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			return a, true
		}
		return netip.Addr{}, false
	}
	if i := strings.IndexByte(s, ':'); i >= 0 && strings.LastIndexByte(s, ':') == i {
		host = s[:i] // IPv4 with a port
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
			return a, true
		}
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	return a, err == nil
}
