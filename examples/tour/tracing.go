package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/otelbridge"
	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"
)

func init() {
	register(chapter{
		name:  "tracing",
		title: "spans follow one request across services (W3C Trace Context), OpenTelemetry instrumentation records into girder, spans go to a collector as OTLP",
		run:   tourTracing,
	})
}

func tourTracing(ctx context.Context, out io.Writer) error {
	// A stand-in for an OpenTelemetry collector: it counts OTLP/HTTP JSON requests and spans.
	var requests, received atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []json.RawMessage `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		requests.Add(1)
		for _, rs := range body.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				received.Add(int64(len(ss.Spans)))
			}
		}
	}))
	defer collector.Close()

	// Two services, each with its own tracer. Both keep spans in memory for this page; the
	// inventory service also ships them to the collector through a batch processor.
	frontendSpans, inventorySpans := &tracing.InMemoryExporter{}, &tracing.InMemoryExporter{}
	frontend, err := tourTracingTracer("frontend", frontendSpans, nil)
	if err != nil {
		return err
	}
	otlp, err := tracing.NewOTLPExporter(tracing.OTLPOptions{URL: collector.URL + "/v1/traces", ServiceName: "inventory"})
	if err != nil {
		return err
	}
	batch, err := tracing.NewBatchProcessor(otlp, tracing.BatchOptions{MaxBatchSize: 64})
	if err != nil {
		return err
	}
	inventory, err := tourTracingTracer("inventory", inventorySpans, batch)
	if err != nil {
		return err
	}

	var seenHeader string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stock/{sku}", func(w http.ResponseWriter, r *http.Request) {
		seenHeader = r.Header.Get("traceparent")
		_, span := inventory.Start(r.Context(), "SELECT stock", tracing.WithSpanKind(tracing.SpanKindClient),
			tracing.WithAttributes(tracing.String("db.system", "postgresql"), tracing.String("sku", r.PathValue("sku"))))
		span.End()
		if r.PathValue("sku") == "gone" {
			http.Error(w, "no such item", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "7 in stock")
	})
	backend := httptest.NewServer(inventory.Middleware(mux))
	defer backend.Close()
	client := &http.Client{Transport: frontend.Transport(nil)}

	ctx, page := frontend.Start(ctx, "render product page", tracing.WithAttributes(tracing.String("user.id", "u-17")))
	for _, sku := range []string{"lamp", "gone"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, backend.URL+"/stock/"+sku, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
	}
	// A library instrumented with OpenTelemetry records through the same tracer
	// (tracing/otelbridge): its span is a child of girder's page span, and girder's span below it
	// is its child.
	pricing := otelbridge.NewTracerProvider(frontend).Tracer("pricing")
	qctx, quote := pricing.Start(ctx, "price quote", oteltrace.WithAttributes(attribute.String("currency", "EUR")))
	_, discount := frontend.Start(qctx, "apply discount")
	discount.End()
	quote.End()
	page.End()

	// Work done later for this request, in a trace of its own, links back to the request.
	_, receipt := frontend.Start(context.Background(), "send receipt", tracing.WithLinks(tracing.Link{SpanContext: page.SpanContext()}))
	receipt.End()
	if err := inventory.Shutdown(ctx); err != nil { // flushes the batch to the collector
		return err
	}

	fmt.Fprintf(out, "traceparent the inventory service received:\n  %s\n\n", seenHeader)
	all := append(frontendSpans.Spans(), inventorySpans.Spans()...)
	inTrace := 0
	for _, s := range all {
		if s.SpanContext.TraceID == page.SpanContext().TraceID {
			inTrace++
		}
	}
	fmt.Fprintf(out, "one trace, %d spans from two services (trace %s):\n", inTrace, page.SpanContext().TraceID)
	for _, s := range all {
		if s.SpanContext.SpanID == page.SpanContext().SpanID {
			tourTracingTree(out, all, s, 1)
		}
	}
	for _, s := range all {
		for _, l := range s.Links {
			for _, to := range all {
				if to.SpanContext.SpanID == l.SpanContext.SpanID {
					fmt.Fprintf(out, "%q, in a trace of its own (%s), links to %q\n", s.Name, s.SpanContext.TraceID, to.Name)
				}
			}
		}
	}
	fmt.Fprintf(out, "\nthe collector got %d spans in %d OTLP/HTTP JSON request(s); dropped by the batch queue: %d\n",
		received.Load(), requests.Load(), batch.Dropped())

	// The same trace-ID ratio as OpenTelemetry: services agree on which traces to keep.
	sampler := tracing.TraceIDRatio(0.25)
	kept := 0
	for range 10_000 {
		_, s := (&tracing.Tracer{}).Start(context.Background(), "x", tracing.WithNewRoot())
		if sampler.Sample(s.SpanContext().TraceID) {
			kept++
		}
	}
	fmt.Fprintf(out, "TraceIDRatio(0.25) keeps %.1f%% of 10000 random traces\n", float64(kept)/100)
	return nil
}

func tourTracingTracer(service string, mem *tracing.InMemoryExporter, extra tracing.Processor) (*tracing.Tracer, error) {
	sp, err := tracing.NewSyncProcessor(mem, nil)
	if err != nil {
		return nil, err
	}
	procs := []tracing.Processor{sp}
	if extra != nil {
		procs = append(procs, extra)
	}
	return tracing.New(tracing.Options{Name: service, Processors: procs})
}

// tourTracingTree prints span and, indented below it, its descendants.
func tourTracingTree(out io.Writer, spans []tracing.SpanData, span tracing.SpanData, depth int) {
	status := ""
	if span.Status.Code == tracing.StatusError {
		status = "  ERROR " + span.Status.Description
	}
	name := strings.Repeat("  ", depth) + span.Name
	fmt.Fprintf(out, "%-28s %-8s %-10s%s\n", name, span.Kind, span.Scope, status)
	for _, s := range spans {
		if s.Parent.SpanID == span.SpanContext.SpanID {
			tourTracingTree(out, spans, s, depth+1)
		}
	}
}
