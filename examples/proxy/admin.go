package main

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/girder-go/girder/tracing"
)

// routes serves the admin endpoints under /admin/ and proxies everything else. Only proxied
// requests are traced: the server span the middleware starts is the parent of one client span
// per attempt.
func routes(p *proxy, fl *fleet, tracer *tracing.Tracer) http.Handler {
	mux := p.metrics.routes(http.NewServeMux())
	mux.HandleFunc("GET /admin/backends", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, overview{Policy: p.policy.String(), Backends: p.views(fl)})
	})
	mux.HandleFunc("POST /admin/backends/{name}/kill", func(w http.ResponseWriter, r *http.Request) {
		p.lifecycle(w, r, fl, (*embedded).kill, "killed")
	})
	mux.HandleFunc("POST /admin/backends/{name}/revive", func(w http.ResponseWriter, r *http.Request) {
		p.lifecycle(w, r, fl, (*embedded).revive, "revived")
	})
	mux.HandleFunc("POST /admin/backends/{name}/sick", func(w http.ResponseWriter, r *http.Request) {
		p.lifecycle(w, r, fl, (*embedded).sicken, "sick")
	})
	mux.HandleFunc("POST /admin/backends/{name}/heal", func(w http.ResponseWriter, r *http.Request) {
		p.lifecycle(w, r, fl, (*embedded).heal, "healed")
	})
	mux.HandleFunc("POST /admin/backends/{name}/reset", func(w http.ResponseWriter, r *http.Request) {
		u, ok := p.upstream(r.PathValue("name"))
		if !ok {
			writeError(w, http.StatusNotFound, errors.New("no backend named "+r.PathValue("name")))
			return
		}
		// An operator who knows the backend is fixed need not wait for the open period.
		u.breaker.Reset()
		p.logger.Warn("breaker reset (admin)", "backend", u.name)
		p.writeView(w, fl, u.name)
	})
	mux.Handle("/admin/", http.NotFoundHandler()) // reserved: never proxied
	var h http.Handler = p
	if tracer != nil {
		h = tracer.Middleware(h)
	}
	mux.Handle("/", h)
	return mux
}

// overview is the body of GET /admin/backends.
type overview struct {
	Policy   string        `json:"policy"`
	Backends []backendView `json:"backends"`
}

// backendView is one backend's state, gathered from the three places that hold it: lb's Stats
// (health and which check has it out, load, latency), the backend's breaker, and the proxy's
// own counters.
type backendView struct {
	Name       string  `json:"name"`
	URL        string  `json:"url"`
	Alive      *bool   `json:"alive,omitempty"` // embedded backends only: not killed
	Sick       *bool   `json:"sick,omitempty"`  // embedded backends only: answering 503
	Healthy    bool    `json:"healthy"`         // lb: neither passive nor active health has it out
	Ejected    bool    `json:"ejected"`         // lb, passive health: out after failed requests
	ProbeDown  bool    `json:"probe_down"`      // lb, active health: out after failed probes
	Breaker    string  `json:"breaker"`         // closed, open or half-open
	InRotation bool    `json:"in_rotation"`     // healthy and the breaker not open
	InFlight   int64   `json:"in_flight"`
	LatencyMS  float64 `json:"latency_ms"`  // peak EWMA (p2c-peak-ewma only)
	SlowFactor float64 `json:"slow_factor"` // share of its weight while slow-starting; 1 otherwise
	Trips      int     `json:"breaker_trips"`
	Attempts   int64   `json:"attempts"` // requests sent to it, retries included
	Served     int64   `json:"served"`   // answered below 500
	Failed     int64   `json:"failed"`   // refused, broken, rejected by the breaker, or 5xx
}

func (p *proxy) views(fl *fleet) []backendView {
	stats := map[string]int{}
	all := p.balancer.Stats()
	for i, s := range all {
		stats[s.Name] = i
	}
	out := make([]backendView, 0, len(p.upstreams))
	for _, u := range p.upstreams {
		v := backendView{Name: u.name, URL: u.url.String(), Breaker: u.breaker.State().String(),
			Trips: u.breaker.Counts().Trips, Attempts: u.attempts.Load(), Served: u.served.Load(),
			Failed: u.failed.Load()}
		if i, ok := stats[u.name]; ok {
			s := all[i]
			v.Healthy, v.Ejected, v.ProbeDown = s.Healthy, s.Ejected, s.ProbeDown
			v.InRotation = s.Healthy && s.Available // Available: lb asked the breaker
			v.InFlight, v.SlowFactor = s.Active, s.SlowFactor
			v.LatencyMS = float64(s.Latency.Microseconds()) / 1000
		}
		if b, ok := fl.get(u.name); ok {
			alive, sick := b.alive(), b.sick.Load()
			v.Alive, v.Sick = &alive, &sick
		}
		out = append(out, v)
	}
	return out
}

// lifecycle kills, revives, sickens or heals an embedded backend and answers with its state.
// Only embedded backends can be: with -backends the proxy does not own the processes.
func (p *proxy) lifecycle(w http.ResponseWriter, r *http.Request, fl *fleet, op func(*embedded) error, did string) {
	name := r.PathValue("name")
	_, known := p.upstream(name)
	b, embedded := fl.get(name)
	switch {
	case !known:
		writeError(w, http.StatusNotFound, errors.New("no backend named "+name))
		return
	case !embedded:
		writeError(w, http.StatusConflict, errors.New("only embedded backends can be killed, revived, made sick or healed"))
		return
	}
	if err := op(b); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	p.logger.Warn("backend "+did+" (admin)", "backend", name)
	p.writeView(w, fl, name)
}

// writeView answers with one backend's state.
func (p *proxy) writeView(w http.ResponseWriter, fl *fleet, name string) {
	for _, v := range p.views(fl) {
		if v.Name == name {
			writeJSON(w, http.StatusOK, v)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
