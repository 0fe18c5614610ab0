package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/otelbridge"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

const (
	// tokenHeader carries the read-your-writes token: sent back after every write, honoured on
	// every read. Clients that keep cookies get it as tokenCookie too.
	tokenHeader = "X-Read-After"
	tokenCookie = "read_after"
	// tokenMaxAge is how long the cookie lives: a token only matters while replicas may lag.
	tokenMaxAge = 60
	// apiKeyHeader names the client for the rate limit. A real service would authenticate it
	// first; without it the limit applies per IP address.
	apiKeyHeader = "X-API-Key"
)

// server holds what the handlers need.
type server struct {
	users    *users
	events   *events
	mem      *memStore // nil with -postgres: no fault injection
	pg       *pgStore  // nil without -postgres
	tracer   *tracing.Tracer
	provider *otelbridge.TracerProvider // OpenTelemetry's API on tracer, for otelhttp
	spans    *spanRing
	log      *slog.Logger
	metrics  *metrics // names the routes of the request histogram
}

// routes builds the handler. The API runs inside the tracing middleware, so that every request,
// rejected ones included, gets a server span continuing the caller's trace, and each route inside
// the rate limit. The debug endpoints have neither: they stay reachable, and reading the spans
// does not make more of them.
func (s *server) routes(limit func(http.Handler) http.Handler) http.Handler {
	api := s.metrics.routes(http.NewServeMux()) // before mux: its routes name the API's requests
	api.Handle("GET /users/{id}", limit(http.HandlerFunc(s.getUser)))
	api.Handle("POST /users", limit(http.HandlerFunc(s.createUser)))
	api.Handle("PUT /users/{id}", limit(http.HandlerFunc(s.updateUser)))

	mux := s.metrics.routes(http.NewServeMux())
	mux.Handle("/", otelhttp.NewHandler(traceResponse(api), "userservice",
		otelhttp.WithTracerProvider(s.provider), otelhttp.WithPropagators(otelbridge.TraceContext{})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /debug/spans", spansHandler(s.tracer, s.spans))
	mux.HandleFunc("GET /debug/outbox", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.events.outbox.list())
	})
	mux.HandleFunc("GET /debug/stats", s.stats)
	if s.mem != nil {
		mux.HandleFunc("POST /debug/db/fail", func(w http.ResponseWriter, _ *http.Request) { s.mem.Fail(); w.WriteHeader(http.StatusNoContent) })
		mux.HandleFunc("POST /debug/db/heal", func(w http.ResponseWriter, _ *http.Request) { s.mem.Heal(); w.WriteHeader(http.StatusNoContent) })
	}
	return mux
}

// getUser serves GET /users/{id}: through the cache, or with "Cache-Control: no-cache" straight
// from the store of record. X-Cache says which level answered; X-DB-Route which node the
// database read went to and why.
func (s *server) getUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	ctx, ok := s.withToken(w, r)
	if !ok {
		return
	}
	ctx, info := withReadInfo(ctx)
	var u User
	var err error
	if strings.Contains(r.Header.Get("Cache-Control"), "no-cache") {
		u, err = s.users.GetFresh(ctx, id)
	} else {
		u, err = s.users.Get(ctx, id)
	}
	source, route := info.get()
	if source == "" {
		source = "coalesced" // joined a load another request had started
	}
	w.Header().Set("X-Cache", source)
	if route != "" {
		w.Header().Set("X-DB-Route", route)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// createUser serves POST /users.
func (s *server) createUser(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeInput(w, r)
	if !ok {
		return
	}
	u, tok, err := s.users.Create(r.Context(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setToken(w, tok)
	w.Header().Set("Location", fmt.Sprintf("/users/%d", u.ID))
	writeJSON(w, http.StatusCreated, u)
}

// updateUser serves PUT /users/{id}.
func (s *server) updateUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	in, ok := decodeInput(w, r)
	if !ok {
		return
	}
	ctx, ok := s.withToken(w, r)
	if !ok {
		return
	}
	u, tok, err := s.users.Update(ctx, id, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setToken(w, tok)
	writeJSON(w, http.StatusOK, u)
}

// withToken returns the request's context carrying the client's read-your-writes token, the later
// of the header's and the cookie's, for the replica router to honour.
func (s *server) withToken(w http.ResponseWriter, r *http.Request) (context.Context, bool) {
	var tok replica.Token
	if c, err := r.Cookie(tokenCookie); err == nil {
		tok = parseTokenOr(c.Value, tok) // a stale or mangled cookie is ignored, not an error
	}
	if h := r.Header.Get(tokenHeader); h != "" {
		t, err := replica.ParseToken(h)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %v", tokenHeader, err))
			return nil, false
		}
		tok = tok.Max(t)
	}
	if tok.IsZero() {
		return r.Context(), true
	}
	tracing.SpanFromContext(r.Context()).SetAttributes(tracing.String("db.read_after", tok.String()))
	return replica.WithToken(r.Context(), tok), true
}

func parseTokenOr(s string, def replica.Token) replica.Token {
	t, err := replica.ParseToken(s)
	if err != nil {
		return def
	}
	return t
}

// setToken hands the write's token to the client, as a header and as a cookie. The zero token
// (one copy of the data, embedded mode) needs neither.
func setToken(w http.ResponseWriter, tok replica.Token) {
	if tok.IsZero() {
		return
	}
	w.Header().Set(tokenHeader, tok.String())
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: tok.String(), Path: "/", MaxAge: tokenMaxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// fail maps the errors of the packages to HTTP statuses: an unknown user is 404, an open breaker
// or an unreachable primary 503 (with Retry-After when known), a timeout 504.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var open *breaker.OpenError
	switch {
	case errors.Is(err, errNoUser):
		writeError(w, http.StatusNotFound, "user not found")
	case errors.As(err, &open):
		if !open.RetryAt.IsZero() {
			secs := max(1, int(math.Ceil(time.Until(open.RetryAt).Seconds())))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
		}
		writeError(w, http.StatusServiceUnavailable, "database unavailable (circuit open)")
	case errors.Is(err, replica.ErrNoPrimary), errors.Is(err, replica.ErrStale):
		writeError(w, http.StatusServiceUnavailable, "database unavailable")
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "database timeout")
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// stats serves GET /debug/stats: the cache's and breaker's counters, the mailer's, and the
// replica router's view of every node.
func (s *server) stats(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		usersStats
		Mailer   eventbus.Stats       `json:"mailer"`
		Replicas []replica.NodeStatus `json:"replicas,omitempty"`
	}{usersStats: s.users.Stats(), Mailer: s.events.mailer.Stats()}
	if s.pg != nil {
		out.Replicas = s.pg.Status()
	}
	writeJSON(w, http.StatusOK, out)
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, "id must be a positive integer")
		return 0, false
	}
	return id, true
}

// decodeInput reads a userInput of at most 64 KiB, rejecting unknown fields and invalid values.
func decodeInput(w http.ResponseWriter, r *http.Request) (userInput, bool) {
	var in userInput
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return in, false
	}
	if err := in.validate(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, strings.ReplaceAll(err.Error(), "\n", "; "))
		return in, false
	}
	return in, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
