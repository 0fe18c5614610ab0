package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/girder-go/girder/tracing"
)

// server is the HTTP side: the API role places orders; every role serves the read endpoints, so
// a worker can be inspected too (its /stats shows its own consumers).
type server struct {
	orders   *orderBook
	store    store
	bus      *bus
	pipeline *pipeline // nil in the api role
	tracer   *tracing.Tracer
	role     string
	logger   *slog.Logger
}

// handler returns the routes, wrapped in the tracer's middleware: each request is a server span,
// continuing the caller's trace when it sends a traceparent header.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	if s.role != roleWorker {
		mux.HandleFunc("POST /orders", s.placeOrder)
	}
	mux.HandleFunc("GET /orders", s.listOrders)
	mux.HandleFunc("GET /orders/{id}", s.getOrder)
	mux.HandleFunc("GET /inventory", s.inventory)
	mux.HandleFunc("GET /notifications", s.notifications)
	mux.HandleFunc("GET /deadletters", s.deadLetters)
	mux.HandleFunc("GET /stats", s.stats)
	if s.pipeline != nil {
		mux.HandleFunc("POST /mailer/outage", s.mailerOutage)
	}
	return s.tracer.Middleware(mux)
}

// placeOrderRequest is the body of POST /orders.
type placeOrderRequest struct {
	Customer string `json:"customer"`
	Email    string `json:"email"`
	Items    []Item `json:"items"`
}

// placeOrder validates the order and appends order.placed to a new order stream; the outbox
// publishes it to the bus after the append, and the rest of the pipeline runs after the
// response, so the answer is 202 Accepted with the order's URL to poll.
//
// There is one write: the event. The bus learns of it from the event store (the transactional
// outbox), so an order is never saved without its event being published, nor published without
// being saved.
func (s *server) placeOrder(w http.ResponseWriter, r *http.Request) {
	var req placeOrderRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	o := OrderPlaced{Customer: req.Customer, Email: req.Email, Items: req.Items, PlacedAt: time.Now().UTC()}
	if err := o.validate(); err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	ctx := r.Context()
	view, err := s.orders.place(ctx, o)
	if err != nil {
		s.logger.ErrorContext(ctx, "order not saved", "error", err)
		httpError(w, http.StatusInternalServerError, err)
		return
	}
	s.logger.InfoContext(ctx, "order placed", "order", view.ID, "customer", view.Customer, "trace_id", traceID(ctx))
	w.Header().Set("Location", "/orders/"+strconv.Itoa(view.ID))
	writeJSON(w, http.StatusAccepted, view)
}

func (s *server) listOrders(w http.ResponseWriter, r *http.Request) {
	orders, err := s.orders.Orders(r.Context())
	reply(w, orders, err)
}

func (s *server) getOrder(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, errors.New("order id must be a number"))
		return
	}
	o, err := s.orders.Order(r.Context(), id)
	if errors.Is(err, errNotFound) {
		httpError(w, http.StatusNotFound, err)
		return
	}
	reply(w, o, err)
}

func (s *server) inventory(w http.ResponseWriter, r *http.Request) {
	stock, err := s.store.Stock(r.Context())
	reply(w, stock, err)
}

func (s *server) notifications(w http.ResponseWriter, r *http.Request) {
	n, err := s.store.Notifications(r.Context())
	reply(w, n, err)
}

func (s *server) deadLetters(w http.ResponseWriter, r *http.Request) {
	d, err := s.store.DeadLetters(r.Context())
	reply(w, d, err)
}

// statsResponse is what GET /stats reports about this process.
type statsResponse struct {
	Role        string              `json:"role"`
	Consumer    string              `json:"consumer,omitempty"`
	Subscribers []subscriptionStats `json:"subscribers"`
	Breaker     string              `json:"mailer_breaker,omitempty"`
	Opened      int64               `json:"mailer_breaker_opened"`
}

func (s *server) stats(w http.ResponseWriter, _ *http.Request) {
	resp := statsResponse{Role: s.role, Subscribers: []subscriptionStats{}}
	if p := s.pipeline; p != nil {
		resp.Consumer = p.consumer
		resp.Subscribers = p.stats()
		resp.Breaker = p.breaker.State().String()
		resp.Opened = p.opened.Load()
	}
	writeJSON(w, http.StatusOK, resp)
}

// mailerOutage takes this worker's simulated mailer down for ?for= (default 3s; 0s ends an
// outage), to watch the breaker open, the retries back off, and the e-mails go out once it is
// back (or, for an outage longer than the retries reach, land in the dead letters).
func (s *server) mailerOutage(w http.ResponseWriter, r *http.Request) {
	m, ok := s.pipeline.mailer.(*flakyMailer)
	if !ok {
		httpError(w, http.StatusNotImplemented, errors.New("this mailer cannot simulate outages"))
		return
	}
	d := 3 * time.Second
	if v := r.URL.Query().Get("for"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d < 0 || d > time.Hour {
			httpError(w, http.StatusBadRequest, errors.New("for: a duration from 0s (ends the outage) to 1h, such as 3s"))
			return
		}
	}
	until := m.outage(d)
	s.logger.WarnContext(r.Context(), "mailer outage simulated", "until", until.Format(time.RFC3339Nano))
	writeJSON(w, http.StatusAccepted, map[string]string{"mailer_down_until": until.UTC().Format(time.RFC3339Nano)})
}

// reply writes v, or a 500 for err.
func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		httpError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func httpError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
