package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is a backend the proxy balances over: a name for logs, the admin endpoints and the
// hash ring, and the base URL requests go to.
type target struct {
	name string
	url  *url.URL
}

// parseTargets turns the -backends list into targets. An entry is a base URL, named after its
// host:port, or name=URL. Names must be unique, so backends that share a host:port (one
// server, two path prefixes) are given names: v1=http://h:8000/v1,v2=http://h:8000/v2.
func parseTargets(raw []string) ([]target, error) {
	var out []target
	var errs []error
	seen := map[string]bool{}
	for _, s := range raw {
		s = strings.TrimSpace(s)
		name, rawURL, named := strings.Cut(s, "=")
		if !named || strings.Contains(name, "/") { // an "=" in the URL's query, not a name
			name, rawURL = "", s
		}
		u, err := url.Parse(rawURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("proxy: backend %q: %w", s, err))
			continue
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
			errs = append(errs, fmt.Errorf("proxy: backend %q: want [name=]http://host:port[/prefix] or https://…", s))
			continue
		}
		if name == "" {
			name = u.Host
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("proxy: backend %q: name %s listed twice (name backends on one host: name=URL)", s, name))
			continue
		}
		seen[name] = true
		out = append(out, target{name: name, url: u})
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("proxy: -backends lists no backend"))
	}
	return out, errors.Join(errs...)
}

// fleet is the set of in-process backends of the embedded mode.
type fleet struct {
	list   []*embedded
	byName map[string]*embedded
}

// startFleet starts n backends named backend-1 … backend-n on loopback ports.
func startFleet(n int, log *slog.Logger) (*fleet, error) {
	f := &fleet{byName: map[string]*embedded{}}
	for i := range n {
		b := &embedded{name: fmt.Sprintf("backend-%d", i+1), addr: "127.0.0.1:0", log: log}
		if err := b.start(); err != nil {
			f.Close()
			return nil, err
		}
		f.list = append(f.list, b)
		f.byName[b.name] = b
	}
	return f, nil
}

func (f *fleet) targets() []target {
	out := make([]target, len(f.list))
	for i, b := range f.list {
		out[i] = target{name: b.name, url: &url.URL{Scheme: "http", Host: b.addr}}
	}
	return out
}

// get returns the named backend; a nil fleet (real backends) has none.
func (f *fleet) get(name string) (*embedded, bool) {
	if f == nil {
		return nil, false
	}
	b, ok := f.byName[name]
	return b, ok
}

// Close stops every backend that is still alive.
func (f *fleet) Close() {
	for _, b := range f.list {
		_ = b.kill()
	}
}

// embedded is one in-process backend. kill closes its server, listener and connections, so the
// proxy sees what it would see of a crashed process: connections refused. revive listens again
// on the same address, as a restarted process would. sick makes it answer 503 to everything
// but its health check, like a process whose health endpoint says all is well while its
// database is gone: only the breaker and passive health notice that.
type embedded struct {
	name string
	log  *slog.Logger
	sick atomic.Bool

	mu   sync.Mutex
	addr string       // host:port; fixed after the first start
	srv  *http.Server // nil while killed
	done chan struct{}
}

func (b *embedded) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		return nil
	}
	// Go sets SO_REUSEADDR on listeners, so a revived backend gets its old port back even while
	// connections of its previous life linger in TIME_WAIT.
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		return fmt.Errorf("proxy: start %s: %w", b.name, err)
	}
	b.addr = ln.Addr().String()
	b.srv = &http.Server{Handler: b.handler(), ReadHeaderTimeout: 10 * time.Second}
	b.done = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("backend serve", "backend", b.name, "err", err)
		}
	}(b.srv, b.done)
	return nil
}

// kill stops the backend abruptly (Close, not Shutdown: requests in flight are cut, like a crash).
func (b *embedded) kill() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv == nil {
		return nil
	}
	err := b.srv.Close()
	<-b.done
	b.srv = nil
	return err
}

func (b *embedded) revive() error { return b.start() }

func (b *embedded) sicken() error { b.sick.Store(true); return nil }

func (b *embedded) heal() error { b.sick.Store(false); return nil }

func (b *embedded) alive() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srv != nil
}

// reply is what an embedded backend answers: its name, what it was asked, and the trace
// context it received, so that a caller can see which backend served it and that the proxy
// passed the trace on.
type reply struct {
	Backend     string `json:"backend"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	BodyBytes   int64  `json:"body_bytes,omitempty"`
	Traceparent string `json:"traceparent,omitempty"`
}

func (b *embedded) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", b.name)
		if b.sick.Load() {
			http.Error(w, b.name+" is sick", http.StatusServiceUnavailable)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(reply{Backend: b.name, Method: r.Method, Path: r.URL.Path, BodyBytes: n,
			Traceparent: r.Header.Get("traceparent")})
	})
	return mux
}
