package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/girder-go/girder/tracing"
)

// spanRing is a tracing.Exporter that keeps the last spans in memory for GET /debug/spans. Unlike
// tracing.InMemoryExporter, which keeps everything (it is meant for tests), it is bounded, so the
// service can run for days.
type spanRing struct {
	mu    sync.Mutex
	spans []tracing.SpanData
	next  int // where the next span goes once the ring is full
	full  bool
}

func newSpanRing(size int) *spanRing { return &spanRing{spans: make([]tracing.SpanData, 0, size)} }

var _ tracing.Exporter = (*spanRing)(nil)

// ExportSpans implements tracing.Exporter. The processor reuses the slice, not the spans' data,
// which no longer changes once a span has ended, so copying the SpanData values is enough.
func (r *spanRing) ExportSpans(_ context.Context, spans []tracing.SpanData) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range spans {
		if !r.full {
			r.spans = append(r.spans, s)
			r.full = len(r.spans) == cap(r.spans)
			continue
		}
		r.spans[r.next] = s
		r.next = (r.next + 1) % len(r.spans)
	}
	return nil
}

// Shutdown implements tracing.Exporter; the spans stay readable.
func (r *spanRing) Shutdown(context.Context) error { return nil }

// list returns the spans of one trace (all spans when traceID is ""), oldest first.
func (r *spanRing) list(traceID string) []tracing.SpanData {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]tracing.SpanData, 0, len(r.spans))
	for i := range len(r.spans) {
		s := r.spans[(r.next+i)%len(r.spans)]
		if traceID == "" || s.SpanContext.TraceID.String() == traceID {
			out = append(out, s)
		}
	}
	return out
}

// newTracer returns a tracer whose batch processor exports to ring and, when jsonOut is not nil,
// a second one printing every span as a JSON line. batchTimeout bounds how long a span waits in
// the queue; /debug/spans flushes first anyway. m, when not nil, counts the spans started by
// sampling decision and watches each processor's export pipeline.
func newTracer(ring *spanRing, jsonOut io.Writer, batchTimeout time.Duration, m *metrics) (*tracing.Tracer, error) {
	var procs []tracing.Processor
	closeAll := func() {
		for _, p := range procs {
			p.Shutdown(context.Background())
		}
	}
	add := func(name string, exp tracing.Exporter) error {
		bp, err := tracing.NewBatchProcessor(exp, tracing.BatchOptions{BatchTimeout: batchTimeout, OnExport: m.onExport(name)})
		if err != nil {
			return err
		}
		p, err := m.processor(name, bp)
		if err != nil {
			bp.Close()
			return err
		}
		procs = append(procs, p)
		return nil
	}
	if err := add(spansMemory, ring); err != nil {
		return nil, err
	}
	if jsonOut != nil {
		if err := add(spansJSON, tracing.NewJSONExporter(jsonOut)); err != nil {
			closeAll()
			return nil, err
		}
	}
	sampler, err := m.sampler(tracing.ParentBased(tracing.AlwaysSample()))
	if err != nil {
		closeAll()
		return nil, err
	}
	return tracing.New(tracing.Options{Name: "userservice", Sampler: sampler, Processors: procs})
}

// spansHandler serves GET /debug/spans[?trace=<32 hex digits>] as a JSON array of the spans in
// the form tracing.JSONExporter writes, after flushing what the batch processors still hold.
func spansHandler(tracer *tracing.Tracer, ring *spanRing) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		_ = tracer.ForceFlush(ctx) // a failed flush still leaves the spans exported so far
		var lines bytes.Buffer
		_ = tracing.NewJSONExporter(&lines).ExportSpans(ctx, ring.list(r.URL.Query().Get("trace")))
		buf := []byte{'['}
		for i, line := range bytes.Split(bytes.TrimSpace(lines.Bytes()), []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			if i > 0 {
				buf = append(buf, ",\n"...)
			}
			buf = append(buf, line...)
		}
		buf = append(buf, "]\n"...)
		w.Header().Set("Content-Type", "application/json")
		w.Write(buf)
	}
}

// traceResponse sends the server span's context back in the traceresponse header (W3C Trace
// Context level 2), so a client that sent no traceparent learns which trace to look up in
// /debug/spans. It must sit inside the tracing middleware and must not copy the request: the
// middleware reads the route pattern the ServeMux sets on it.
func traceResponse(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sc := tracing.SpanContextFromContext(r.Context()); sc.IsValid() {
			w.Header().Set("traceresponse", tracing.FormatTraceparent(sc))
		}
		next.ServeHTTP(w, r)
	})
}
