package lb

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
)

// ProxyOptions configures NewProxy.
type ProxyOptions[T any] struct {
	// URL returns the base URL of a backend: scheme, host and an optional path prefix. It may be
	// nil when T is *url.URL.
	URL func(T) *url.URL
	// Transport performs each attempt; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Attempts is how many backends one request may try; 0 means 3. Retries beyond the first
	// attempt also need the balancer's Options.RetryBudget to allow them. Only idempotent requests
	// (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any request carrying an Idempotency-Key
	// header) whose body can be sent again are tried more than once: no body, a body of at most
	// MaxRetryBodyBytes, or a request with GetBody set.
	Attempts int
	// MaxRetryBodyBytes is the largest request body the proxy keeps in memory so that a retry
	// can send it again; 0 means 64 KiB, negative never buffers. Only a request that may be
	// retried has its body buffered, before the first attempt (Content-Length tells the size
	// up front; a chunked body is read up to the limit). A larger body streams through to the
	// first backend, and its request gets that one attempt.
	MaxRetryBodyBytes int64
	// Key returns the key of a request for ConsistentHash (a session cookie, a user id).
	// Required with ConsistentHash, ignored by the other policies. A request whose key is ""
	// has no affinity: it goes to the backends in turn.
	Key func(*http.Request) string
	// IsFailure decides which outcomes count against a backend and, for idempotent requests,
	// move on to another one; nil means a transport error or status 502, 503 or 504.
	IsFailure func(*http.Response, error) bool
	// Rewrite, when set, runs after the X-Forwarded headers are set, to adjust the outgoing
	// request further (headers only: the transport chooses the backend and sets the URL).
	// Transport sees each attempt's backend through BackendFromContext.
	Rewrite func(*httputil.ProxyRequest)
	// Hedge decides which requests are hedged when the balancer's Options.Hedge is set; nil
	// means GET, HEAD and OPTIONS. A hedged request is sent twice at once and retried whatever
	// its method, so accept only requests that are safe to repeat. Only requests without a
	// body are hedged, and a hedge counts as one of the request's Attempts.
	Hedge func(*http.Request) bool
	// Logger receives proxy errors; nil is silent.
	Logger *slog.Logger
}

// StatusError is the error a proxied attempt reports to Lease.Done when the backend answered
// with a status that ProxyOptions.IsFailure counts as a failure.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return fmt.Sprintf("lb: backend answered %d", e.Code) }

// NewProxy returns an httputil.ReverseProxy that sends each request to a backend b picks and,
// when an attempt fails, retries an idempotent request on another backend (never one it already
// tried), buffering a small request body so it can be sent again (MaxRetryBodyBytes). Each
// attempt's request carries its backend for the transport (BackendFromContext). Each attempt's
// outcome and time to response headers feed b's health and latency estimates; the lease ends
// when the response body is closed. When no backend is usable the client gets 503, when every
// attempt failed 502. The returned proxy's fields (ModifyResponse, ErrorHandler,
// FlushInterval, …) may be changed before it serves.
func NewProxy[T any](b *Balancer[T], opts ProxyOptions[T]) (*httputil.ReverseProxy, error) {
	var errs []error
	if b == nil {
		errs = append(errs, errors.New("lb: NewProxy: nil Balancer"))
	}
	if err := opts.Validate(); err != nil {
		errs = append(errs, err)
	}
	if b != nil && b.set.policy == ConsistentHash && opts.Key == nil {
		errs = append(errs, fmt.Errorf("lb: NewProxy: ProxyOptions.Key is required with ConsistentHash: %w", ErrKeyRequired))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	target := opts.URL
	if target == nil {
		target = identityURL[T]()
	}
	t := &proxyTransport[T]{b: b, url: target, next: opts.Transport, attempts: cmp.Or(opts.Attempts, 3),
		maxBody: cmp.Or(opts.MaxRetryBodyBytes, defaultMaxRetryBody), key: opts.Key, isFailure: opts.IsFailure}
	if t.next == nil {
		t.next = http.DefaultTransport
	}
	if t.isFailure == nil {
		t.isFailure = defaultProxyFailure
	}
	t.hedge = opts.Hedge
	if t.hedge == nil {
		t.hedge = defaultProxyHedge
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

// Validate reports every problem with o at once, or nil; NewProxy calls it, and also requires
// Key when the balancer's policy is ConsistentHash.
func (o *ProxyOptions[T]) Validate() error {
	var errs []error
	if o.URL == nil && identityURL[T]() == nil {
		errs = append(errs, errors.New("lb: ProxyOptions.URL is required unless T is *url.URL"))
	}
	if o.Attempts < 0 {
		errs = append(errs, fmt.Errorf("lb: ProxyOptions.Attempts %d is negative", o.Attempts))
	}
	return errors.Join(errs...)
}

// identityURL returns the identity function when T is *url.URL, nil otherwise.
func identityURL[T any]() func(T) *url.URL {
	f, _ := any(func(u *url.URL) *url.URL { return u }).(func(T) *url.URL)
	return f
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

// defaultMaxRetryBody is ProxyOptions.MaxRetryBodyBytes when zero.
const defaultMaxRetryBody = 64 << 10

// backendKey is the context key under which an attempt's request carries its *member[T], as a
// ctxBackend so that a lookup with the wrong type can still say what is there.
type backendKey struct{}

type ctxBackend interface {
	backendName() string
	backendValue() any
}

func (m *member[T]) backendName() string { return m.name }
func (m *member[T]) backendValue() any   { return m.value }

// BackendFromContext returns the backend NewProxy picked for the attempt whose outgoing request
// carries ctx: its value and its name. ProxyOptions.Transport (and whatever it wraps) uses it to
// find per-backend state, a circuit breaker or a connection pool, without matching the
// request's URL back to a backend. It returns ErrNotProxied for any other context, and an error
// wrapping ErrBackendType, with the backend's name, when T is not the balancer's backend type.
func BackendFromContext[T any](ctx context.Context) (backend T, name string, err error) {
	v, _ := ctx.Value(backendKey{}).(ctxBackend)
	if v == nil {
		return backend, "", ErrNotProxied
	}
	m, ok := v.(*member[T])
	if !ok {
		return backend, v.backendName(), fmt.Errorf("%w: BackendFromContext[%v] on backend %q, a %T",
			ErrBackendType, reflect.TypeFor[T](), v.backendName(), v.backendValue())
	}
	return m.value, m.name, nil
}

var (
	// ErrNotProxied is returned by BackendFromContext for a context that no NewProxy attempt
	// carries.
	ErrNotProxied = errors.New("lb: context carries no backend: not a NewProxy attempt")
	// ErrBackendType is wrapped by the error BackendFromContext returns when asked for a type
	// other than the balancer's backend type.
	ErrBackendType = errors.New("lb: backend type mismatch")
)

type proxyTransport[T any] struct {
	b         *Balancer[T]
	url       func(T) *url.URL
	next      http.RoundTripper
	attempts  int
	maxBody   int64 // negative: never buffer
	key       func(*http.Request) string
	isFailure func(*http.Response, error) bool
	hedge     func(*http.Request) bool
}

func (t *proxyTransport[T]) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	key := ""
	if t.key != nil {
		key = t.key(req)
	}
	body, err := t.replayable(req)
	if err != nil {
		return nil, err
	}
	t.b.requestStarted()
	if t.b.hedge.on && t.hedge(req) && body.first == nil && t.attempts > 1 {
		return t.hedged(req, key)
	}
	var triedBuf [4]*state
	tried := triedBuf[:0]
	var lastErr error
	for attempt := 0; ; attempt++ {
		l, err := t.b.pick(key, key != "", tried)
		if err != nil {
			body.close()
			if lastErr != nil {
				return nil, fmt.Errorf("%w (after: %w)", err, lastErr)
			}
			return nil, err
		}
		out, err := t.outgoing(req, l.m, body, attempt)
		if err != nil {
			l.Done(nil, 0)
			body.close()
			return nil, err
		}
		start := time.Now()
		resp, err := t.next.RoundTrip(out)
		latency := time.Since(start)
		failed := t.isFailure(resp, err)
		if failed && body.retry && attempt+1 < t.attempts && ctx.Err() == nil &&
			t.b.mayRetry(ctx, l.m.name, attempt+1, attemptError(resp, err)) {
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
		} else {
			t.b.hedge.observe(latency)
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

// requestBody is how each attempt gets the request's body: first, the body of the first attempt
// (nil when the request has none); replay, when set, a fresh copy for each further attempt.
// retry reports whether the request may be tried more than once.
type requestBody struct {
	first  io.ReadCloser
	length int64
	replay func() (io.ReadCloser, error)
	retry  bool
}

// close releases the request's body when no attempt will send it.
func (b requestBody) close() {
	if b.first != nil {
		b.first.Close()
	}
}

// replayable decides whether req may be retried and, when it may and its body cannot be sent
// again as it is, reads a body of at most maxBody bytes into memory.
func (t *proxyTransport[T]) replayable(req *http.Request) (requestBody, error) {
	rb := requestBody{length: req.ContentLength, retry: t.attempts > 1 && idempotent(req)}
	if req.Body == nil || req.Body == http.NoBody {
		return rb, nil
	}
	rb.first, rb.replay = req.Body, req.GetBody
	switch {
	case !rb.retry || rb.replay != nil:
		return rb, nil
	case t.maxBody < 0 || req.ContentLength > t.maxBody:
		rb.retry = false
		return rb, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, t.maxBody+1))
	if err != nil {
		req.Body.Close()
		return rb, fmt.Errorf("lb: proxy: read request body: %w", err)
	}
	if int64(len(buf)) > t.maxBody { // a chunked body that turned out too big: send what was read, then the rest
		rb.first = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		rb.retry = false
		return rb, nil
	}
	req.Body.Close()
	rb.replay = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	rb.first, _ = rb.replay()
	rb.length = int64(len(buf))
	return rb, nil
}

// outgoing builds one attempt's request: the proxy's request aimed at m's URL, carrying m in its
// context (BackendFromContext), with a fresh body when it is a retry.
func (t *proxyTransport[T]) outgoing(req *http.Request, m *member[T], body requestBody, attempt int) (*http.Request, error) {
	target := t.url(m.value)
	if target == nil {
		return nil, fmt.Errorf("lb: proxy: backend %q has no URL", m.name)
	}
	out := req.Clone(context.WithValue(req.Context(), backendKey{}, m))
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
	out.Body, out.ContentLength, out.GetBody = body.first, body.length, body.replay
	if attempt > 0 && body.first != nil {
		b, err := body.replay()
		if err != nil {
			return nil, fmt.Errorf("lb: proxy: replay body: %w", err)
		}
		out.Body = b
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

// leaseBody ends the lease, once, when the response body is read to its end or closed.
type leaseBody[T any] struct {
	io.ReadCloser
	lease   Lease[T]
	err     error
	latency time.Duration
	ended   atomic.Bool
}

func (r *leaseBody[T]) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF {
		r.end()
	}
	return n, err
}

func (r *leaseBody[T]) Close() error {
	err := r.ReadCloser.Close()
	r.end()
	return err
}

func (r *leaseBody[T]) end() {
	if r.ended.CompareAndSwap(false, true) {
		r.lease.Done(r.err, r.latency)
	}
}
