package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/girder-go/girder/ratelimit"
)

// cookieName is the cookie that carries the session ID; GET /me and POST /logout also accept
// "Authorization: Bearer <id>".
const cookieName = "session"

// api serves the session endpoints and the admin endpoints.
type api struct {
	store   sessionStore
	ring    *Store        // the store when it is the ring; nil in cluster mode
	cluster *clusterStore // the store in cluster mode; nil otherwise
	members *membership   // nil in cluster mode
	fleet   *embedded     // nil with real nodes
	log     *slog.Logger
	metrics *metrics // names the routes of the request histogram
}

// routes wires the endpoints. Logins go through ratelimit's HTTP middleware over a keyed token
// bucket (one bucket per user name, cfg.loginRate logins a minute with as many at once), which
// answers 429 with Retry-After and the IETF RateLimit fields. The middleware asks the bucket
// through the metrics' Decider, which counts every decision on /metrics. Limiting by user name slows down
// password guessing on one account; a real service adds a limit per client address, since a
// limit per name alone lets anyone spend a user's logins.
func routes(a *api, limiter *ratelimit.Keyed) (http.Handler, error) {
	login := http.Handler(http.HandlerFunc(a.login))
	if limiter != nil {
		decider, err := a.metrics.loginDecider(limiter)
		if err != nil {
			return nil, fmt.Errorf("sessions: login rate limit metrics: %w", err)
		}
		mw, err := ratelimit.Middleware(ratelimit.MiddlewareOptions{
			Limiter: decider,
			Key:     loginUser,
			Policy:  "login",
			OnError: func(w http.ResponseWriter, _ *http.Request, err error) {
				writeError(w, http.StatusBadRequest, err)
			},
		})
		if err != nil {
			return nil, fmt.Errorf("sessions: login rate limit: %w", err)
		}
		login = mw(login)
	}
	mux := a.metrics.routes(http.NewServeMux())
	mux.Handle("POST /login", login)
	mux.HandleFunc("GET /me", a.me)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /admin/nodes", a.nodes)
	mux.HandleFunc("POST /admin/nodes/{name}/kill", a.kill)
	mux.HandleFunc("POST /admin/nodes/{name}/revive", a.revive)
	return mux, nil
}

// loginUser is the rate limiter's key: the user name of the login form.
func loginUser(r *http.Request) (string, error) {
	user := r.FormValue("user")
	switch {
	case user == "":
		return "", errors.New("sessions: the form field user is required")
	case len(user) > 64 || strings.IndexFunc(user, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		return "", errors.New("sessions: user must be at most 64 printable characters")
	}
	return user, nil
}

type loginReply struct {
	ID       string    `json:"id"`
	User     string    `json:"user"`
	Expires  time.Time `json:"expires"`
	StoredOn []string  `json:"stored_on"`
}

// login creates a session for the form's user and sets the session cookie. There is no password:
// authentication is not what this example is about.
func (a *api) login(w http.ResponseWriter, r *http.Request) {
	user, err := loginUser(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sess, stored, err := a.store.Create(r.Context(), user)
	if err != nil {
		a.storeError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sess.ID, Path: "/", Expires: sess.Expires,
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
	writeJSON(w, http.StatusCreated, loginReply{ID: sess.ID, User: sess.User, Expires: sess.Expires, StoredOn: stored})
}

type meReply struct {
	Session
	ServedBy string   `json:"served_by"` // the replica that answered
	Replicas []string `json:"replicas"`  // the session's replicas now: on the ring, owner first; in a cluster, its slot's master then replicas
}

// me returns the caller's session and where it was found.
func (a *api) me(w http.ResponseWriter, r *http.Request) {
	sess, servedBy, err := a.store.Get(r.Context(), sessionID(r))
	if err != nil {
		a.storeError(w, err)
		return
	}
	// The ring just answered, so it cannot be empty; a cluster that fails to list its slots now
	// leaves replicas empty rather than fail a read that worked.
	replicas, _ := a.store.Replicas(r.Context(), sess.ID)
	writeJSON(w, http.StatusOK, meReply{Session: sess, ServedBy: servedBy, Replicas: replicas})
}

// logout deletes the caller's session everywhere and clears the cookie.
func (a *api) logout(w http.ResponseWriter, r *http.Request) {
	found, err := a.store.Delete(r.Context(), sessionID(r))
	if err != nil {
		a.storeError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	writeJSON(w, http.StatusOK, map[string]bool{"logged_out": found})
}

// sessionID reads the session ID from the cookie, or from an Authorization bearer token.
func sessionID(r *http.Request) string {
	if c, err := r.Cookie(cookieName); err == nil {
		return c.Value
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}

// storeError answers a store failure: 401 for a session that does not exist, 503 when its
// replicas cannot be reached.
func (a *api) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusUnauthorized, err)
	case errors.Is(err, ErrUnavailable):
		a.log.Warn("store unavailable", "err", err)
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		a.log.Error("store", "err", err)
		writeError(w, http.StatusInternalServerError, err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
