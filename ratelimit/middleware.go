package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Decider decides whether n events for key may happen now, and if so takes their tokens.
// Limiter (which ignores the key), Keyed, and redislimit's Limiter and Hybrid implement it; the
// middleware asks it.
type Decider interface {
	Decide(ctx context.Context, key string, n int) (Result, error)
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(ctx context.Context, key string, n int) (Result, error)

// Decide calls f.
func (f DeciderFunc) Decide(ctx context.Context, key string, n int) (Result, error) {
	return f(ctx, key, n)
}

var (
	_ Decider = (*Limiter)(nil)
	_ Decider = (*Keyed)(nil)
)

// MiddlewareOptions configures the HTTP middleware.
type MiddlewareOptions struct {
	// Limiter decides each request. Required.
	Limiter Decider
	// Key names the client a request counts against; nil means KeyByIP. Behind proxies use a
	// ClientIP's Key. A key longer than MaxKeyLen fails with ErrKeyTooLong.
	Key func(*http.Request) (string, error)
	// Cost is how many events a request counts as; nil means 1.
	Cost func(*http.Request) int
	// Policy names the quota policy in the RateLimit-Policy and RateLimit fields; "" means
	// "default". It must be printable ASCII.
	Policy string
	// LegacyHeaders adds X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (Unix
	// time in seconds at which the quota is full again, as GitHub and express-rate-limit send).
	LegacyHeaders bool
	// OnLimited writes the response to a denied request after the headers are set; nil means
	// status 429 with a one-line text body.
	OnLimited http.Handler
	// OnError writes the response when the key function or the limiter returns an error; nil
	// means a one-line text body with status 413 Content Too Large for a request costing more
	// than the burst (ErrExceedsBurst: it can never be admitted, so no Retry-After), 400 for an
	// empty key or one longer than MaxKeyLen, and 500 otherwise. For ErrExceedsBurst the
	// RateLimit fields are set before OnError is called.
	OnError func(w http.ResponseWriter, r *http.Request, err error)
}

// Validate reports every problem with o, or nil; Middleware calls it.
func (o MiddlewareOptions) Validate() error {
	var errs []error
	if o.Limiter == nil {
		errs = append(errs, errors.New("ratelimit: MiddlewareOptions.Limiter is nil"))
	}
	if _, err := sfString(o.Policy); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Middleware returns HTTP middleware that asks the limiter about every request. An admitted
// request reaches the next handler with the IETF RateLimit-Policy and RateLimit fields set
// (draft-ietf-httpapi-ratelimit-headers, e.g. `"default";q=100;w=60` and `"default";r=42;t=18`);
// a denied one gets the same fields, Retry-After in seconds and, by default, status 429. A request
// whose Cost exceeds the burst can never be admitted: it gets the same fields, no Retry-After,
// and, by default, status 413 (see OnError). When the
// limiter decided by its failure policy (Result.Fallback), the RateLimit fields are left out, as
// nothing is known about the quota.
func Middleware(o MiddlewareOptions) (func(http.Handler) http.Handler, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Key == nil {
		o.Key = KeyByIP
	}
	if o.Policy == "" {
		o.Policy = "default"
	}
	if o.OnLimited == nil {
		o.OnLimited = http.HandlerFunc(tooManyRequests)
	}
	if o.OnError == nil {
		o.OnError = limiterError
	}
	quoted, err := sfString(o.Policy)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, err := o.Key(r)
			switch {
			case err != nil:
			case key == "":
				err = ErrEmptyKey
			case len(key) > MaxKeyLen:
				err = fmt.Errorf("%w: %d bytes", ErrKeyTooLong, len(key))
			}
			if err != nil {
				o.OnError(w, r, fmt.Errorf("ratelimit: key: %w", err))
				return
			}
			n := 1
			if o.Cost != nil {
				n = o.Cost(r)
			}
			res, err := o.Limiter.Decide(r.Context(), key, n)
			h := w.Header()
			if (err == nil || errors.Is(err, ErrExceedsBurst)) && !res.Fallback && res.Limit.Window() > 0 {
				setHeaders(h, quoted, res, o.LegacyHeaders)
			}
			if err != nil {
				o.OnError(w, r, err)
				return
			}
			if !res.Allowed {
				h.Set("Retry-After", strconv.FormatInt(ceilSeconds(res.RetryAfter, 1), 10))
				o.OnLimited.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// setHeaders writes the RateLimit fields for res; quoted is the policy name as an sf-string.
func setHeaders(h http.Header, quoted string, res Result, legacy bool) {
	burst := res.Limit.burst()
	window := ceilSeconds(res.Limit.Window(), 1)
	reset := ceilSeconds(res.Reset, 0)
	remaining := max(res.Remaining, 0)
	var b []byte
	b = append(b, quoted...)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, int64(burst), 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, window, 10)
	h.Set("RateLimit-Policy", string(b))
	b = append(b[:0], quoted...)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, reset, 10)
	h.Set("RateLimit", string(b))
	if legacy {
		h.Set("X-RateLimit-Limit", strconv.Itoa(burst))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(res.Reset).Unix(), 10))
	}
}

// sfString encodes s as a Structured Field String (RFC 8941, section 3.3.3), the form the
// policy name takes in the RateLimit fields: printable ASCII only, with " and \ escaped.
func sfString(s string) (string, error) {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("ratelimit: Policy %q: a policy name must be printable ASCII", s)
		}
		if c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return string(append(b, '"')), nil
}

// ceilSeconds rounds d up to whole seconds, at least least.
func ceilSeconds(d time.Duration, least int64) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, least)
}

func tooManyRequests(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "too many requests", http.StatusTooManyRequests)
}

func limiterError(w http.ResponseWriter, _ *http.Request, err error) {
	if errors.Is(err, ErrExceedsBurst) {
		http.Error(w, "request costs more than the rate limit's burst", http.StatusRequestEntityTooLarge)
		return
	}
	if errors.Is(err, ErrEmptyKey) || errors.Is(err, ErrKeyTooLong) {
		http.Error(w, "no usable rate limit key", http.StatusBadRequest)
		return
	}
	http.Error(w, "rate limiter failed", http.StatusInternalServerError)
}

// KeyByIP keys a request by the host part of its RemoteAddr: the peer's IP address, as is.
// It is right only for a server that clients reach directly; behind a proxy every client would
// share the proxy's key, and IPv6 clients are keyed per address. Use ClientIP, which handles all
// three deployments:
//
//   - directly exposed: ClientIPOptions{} keys by the peer address, ignoring forwarding headers
//     (any client can write them), with IPv6 grouped by /64;
//   - behind one proxy (a load balancer at 10.0.0.0/8): ClientIPOptions{TrustedProxies:
//     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}} keys by the address that proxy
//     appended to X-Forwarded-For;
//   - behind a CDN and a proxy: list the CDN's published ranges with the proxy's in
//     TrustedProxies (or, if neither has fixed addresses, set TrustedHops: 2), and the key is the
//     address the CDN edge saw.
func KeyByIP(r *http.Request) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return "", fmt.Errorf("%w: RemoteAddr %q: %w", ErrNoClientAddr, r.RemoteAddr, err)
	}
	return host, nil
}

// KeyByHeader keys a request by the value of a header that a client cannot choose: an API key,
// a user ID set by an authenticating proxy that strips the client's own. Never X-Forwarded-For
// or Forwarded, whose entries any client can write: use ClientIP for those. A request without
// the header fails with ErrEmptyKey; a value longer than MaxKeyLen with ErrKeyTooLong.
func KeyByHeader(name string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		v := r.Header.Get(name)
		if v == "" {
			return "", fmt.Errorf("ratelimit: header %s: %w", name, ErrEmptyKey)
		}
		if len(v) > MaxKeyLen {
			return "", fmt.Errorf("ratelimit: header %s: %w: %d bytes", name, ErrKeyTooLong, len(v))
		}
		return v, nil
	}
}
