package lb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// ProxyOptions configures NewProxy.
type ProxyOptions[T any] struct {
	// URL returns the base URL of a backend: scheme, host and an optional path prefix. It may be
	// nil when T is *url.URL.
	URL func(T) *url.URL
	// Transport performs each attempt; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Attempts is how many backends one request may try; 0 means 3. Only idempotent requests
	// (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any request carrying an Idempotency-Key
	// header) whose body can be replayed are tried more than once.
	Attempts int
	// Key returns the key of a request for ConsistentHash (a session cookie, a user id); nil or
	// "" picks without a key.
	Key func(*http.Request) string
	// IsFailure decides which outcomes count against a backend and, for idempotent requests,
	// move on to another one; nil means a transport error or status 502, 503 or 504.
	IsFailure func(*http.Response, error) bool
	// Rewrite, when set, runs after the X-Forwarded headers are set, to adjust the outgoing
	// request further (headers only: the transport chooses the backend and sets the URL).
	Rewrite func(*httputil.ProxyRequest)
	// Logger receives proxy errors; nil is silent.
	Logger *slog.Logger
}

// StatusError is the error a proxied attempt reports to Lease.Done when the backend answered
// with a status that ProxyOptions.IsFailure counts as a failure.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return fmt.Sprintf("lb: backend answered %d", e.Code) }

// NewProxy returns an httputil.ReverseProxy that sends each request to a backend b picks and,
// when an attempt fails, retries an idempotent request on another backend (never one it already
// tried). Each attempt's outcome and time to response headers feed b's health and latency
// estimates; the lease ends when the response body is closed. When no backend is usable the
// client gets 503, when every attempt failed 502. The returned proxy's fields (ModifyResponse,
// ErrorHandler, FlushInterval, …) may be changed before it serves.
func NewProxy[T any](b *Balancer[T], opts ProxyOptions[T]) (*httputil.ReverseProxy, error) {
	var errs []error
	if b == nil {
		errs = append(errs, errors.New("lb: NewProxy: nil Balancer"))
	}
	target := opts.URL
	if target == nil {
		if f, ok := any(func(u *url.URL) *url.URL { return u }).(func(T) *url.URL); ok {
			target = f
		} else {
			errs = append(errs, errors.New("lb: NewProxy: ProxyOptions.URL is required unless T is *url.URL"))
		}
	}
	if opts.Attempts < 0 {
		errs = append(errs, fmt.Errorf("lb: NewProxy: Attempts %d is negative", opts.Attempts))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t := &proxyTransport[T]{b: b, url: target, next: opts.Transport, attempts: cmp.Or(opts.Attempts, 3),
		key: opts.Key, isFailure: opts.IsFailure}
	if t.next == nil {
		t.next = http.DefaultTransport
	}
	if t.isFailure == nil {
		t.isFailure = defaultProxyFailure
	}
	logger := opts.Logger
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			if opts.Rewrite != nil {
				opts.Rewrite(pr)
			}
		},
		Transport: t,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			code := http.StatusBadGateway
			if errors.Is(err, ErrNoBackend) || errors.Is(err, ErrClosed) {
				code = http.StatusServiceUnavailable
			}
			if logger != nil && !errors.Is(err, context.Canceled) {
				logger.Warn("lb: proxy", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			w.WriteHeader(code)
		},
	}, nil
}

func defaultProxyFailure(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

type proxyTransport[T any] struct {
	b         *Balancer[T]
	url       func(T) *url.URL
	next      http.RoundTripper
	attempts  int
	key       func(*http.Request) string
	isFailure func(*http.Response, error) bool
}

func (t *proxyTransport[T]) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	key := ""
	if t.key != nil {
		key = t.key(req)
	}
	retryable := idempotent(req) && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
	var triedBuf [4]*state
	tried := triedBuf[:0]
	var lastErr error
	for attempt := 0; ; attempt++ {
		l, err := t.b.pick(key, key != "", tried)
		if err != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("%w (after: %w)", err, lastErr)
			}
			return nil, err
		}
		out, err := t.outgoing(req, l.Backend(), attempt)
		if err != nil {
			l.Done(nil, 0)
			return nil, err
		}
		start := time.Now()
		resp, err := t.next.RoundTrip(out)
		latency := time.Since(start)
		failed := t.isFailure(resp, err)
		if failed && retryable && attempt+1 < t.attempts && ctx.Err() == nil {
			lastErr = attemptError(resp, err)
			l.Done(lastErr, latency)
			if resp != nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
			}
			tried = append(tried, l.m.st)
			continue
		}
		if err != nil {
			l.Done(err, latency)
			return nil, err
		}
		var outcome error
		if failed {
			outcome = attemptError(resp, nil)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// The proxy needs the upgraded connection's body as it is (an io.ReadWriteCloser).
			l.Done(outcome, latency)
			return resp, nil
		}
		resp.Body = &leaseBody[T]{ReadCloser: resp.Body, lease: l, err: outcome, latency: latency}
		return resp, nil
	}
}

func attemptError(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	return &StatusError{Code: resp.StatusCode}
}

// outgoing builds one attempt's request: the proxy's request aimed at the backend's URL, with a
// fresh body when it is a retry.
func (t *proxyTransport[T]) outgoing(req *http.Request, backend T, attempt int) (*http.Request, error) {
	target := t.url(backend)
	if target == nil {
		return nil, fmt.Errorf("lb: proxy: backend has no URL")
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host = target.Scheme, target.Host
	out.URL.Path, out.URL.RawPath = joinURLPath(target, req.URL)
	switch {
	case target.RawQuery == "":
	case req.URL.RawQuery == "":
		out.URL.RawQuery = target.RawQuery
	default:
		out.URL.RawQuery = target.RawQuery + "&" + req.URL.RawQuery
	}
	out.Host = ""
	if attempt > 0 && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("lb: proxy: replay body: %w", err)
		}
		out.Body = body
	}
	return out, nil
}

// idempotent reports whether a request may be sent twice (RFC 9110 §9.2.2, and the
// Idempotency-Key header that net/http's own retries honour).
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// joinURLPath joins the backend's path prefix and the request's path with one slash between.
func joinURLPath(a, b *url.URL) (path, rawpath string) {
	if a.RawPath == "" && b.RawPath == "" {
		return singleJoiningSlash(a.Path, b.Path), ""
	}
	apath, bpath := a.EscapedPath(), b.EscapedPath()
	aslash, bslash := strings.HasSuffix(apath, "/"), strings.HasPrefix(bpath, "/")
	switch {
	case aslash && bslash:
		return a.Path + b.Path[1:], apath + bpath[1:]
	case !aslash && !bslash:
		return a.Path + "/" + b.Path, apath + "/" + bpath
	}
	return a.Path + b.Path, apath + bpath
}

func singleJoiningSlash(a, b string) string {
	aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash && b != "":
		return a + "/" + b
	}
	return a + b
}

// leaseBody ends the lease when the response body is read to its end or closed.
type leaseBody[T any] struct {
	io.ReadCloser
	lease   Lease[T]
	err     error
	latency time.Duration
}

func (r *leaseBody[T]) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF {
		r.lease.Done(r.err, r.latency)
	}
	return n, err
}

func (r *leaseBody[T]) Close() error {
	err := r.ReadCloser.Close()
	r.lease.Done(r.err, r.latency)
	return err
}
