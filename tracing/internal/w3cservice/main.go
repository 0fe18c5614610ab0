// Command w3cservice is the test service of the official W3C Trace Context suite
// (github.com/w3c/trace-context, folder test): it answers the harness's POST /test by calling
// back every URL in the JSON body, carrying the trace context it received on to a child span.
// With -api girder it propagates with tracing.Extract and tracing.Inject around a girder span;
// with -api otel it uses the OpenTelemetry API on girder's provider (otelbridge) and
// otelbridge.TraceContext. .ci/w3c-trace-context.sh runs the suite against both.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/otelbridge"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// call is one instruction of the harness: POST arguments to url.
type call struct {
	URL       string          `json:"url"`
	Arguments json.RawMessage `json:"arguments"`
}

// propagator continues the caller's trace in a new span and carries it on to callbacks.
type propagator interface {
	start(r *http.Request) (context.Context, func())
	client(ctx context.Context) (context.Context, func()) // a span for one callback
	inject(ctx context.Context, h http.Header)
}

type girderAPI struct{ tracer *tracing.Tracer }

func (g girderAPI) start(r *http.Request) (context.Context, func()) {
	ctx, span := g.tracer.Start(tracing.Extract(r.Context(), r.Header), "test", tracing.WithSpanKind(tracing.SpanKindServer))
	return ctx, span.End
}

func (g girderAPI) client(ctx context.Context) (context.Context, func()) {
	ctx, span := g.tracer.Start(ctx, "callback", tracing.WithSpanKind(tracing.SpanKindClient))
	return ctx, span.End
}

func (girderAPI) inject(ctx context.Context, h http.Header) { tracing.Inject(ctx, h) }

type otelAPI struct {
	provider *otelbridge.TracerProvider
	prop     otelbridge.TraceContext
}

func (o otelAPI) start(r *http.Request) (context.Context, func()) {
	ctx := o.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := o.provider.Tracer("w3cservice").Start(ctx, "test")
	return ctx, func() { span.End() }
}

func (o otelAPI) client(ctx context.Context) (context.Context, func()) {
	ctx, span := o.provider.Tracer("w3cservice").Start(ctx, "callback", trace.WithSpanKind(trace.SpanKindClient))
	return ctx, func() { span.End() }
}

func (o otelAPI) inject(ctx context.Context, h http.Header) {
	o.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

func handler(p propagator) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var calls []call
		if err := json.NewDecoder(r.Body).Decode(&calls); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx, end := p.start(r)
		defer end()
		for _, c := range calls {
			if err := callBack(ctx, p, c); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	}
}

// callBack posts c's arguments to c's URL in a client span of its own.
func callBack(ctx context.Context, p propagator, c call) error {
	ctx, end := p.client(ctx)
	defer end()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(c.Arguments))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	p.inject(ctx, req.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func main() {
	api := flag.String("api", "girder", "the API that propagates: girder or otel")
	addr := flag.String("addr", "127.0.0.1:0", "listen address; the chosen address is printed on stdout")
	flag.Parse()
	tracer, err := tracing.New(tracing.Options{Name: "w3cservice"})
	if err != nil {
		log.Fatal(err)
	}
	var p propagator
	switch *api {
	case "girder":
		p = girderAPI{tracer}
	case "otel":
		p = otelAPI{provider: otelbridge.NewTracerProvider(tracer)}
	default:
		fmt.Fprintf(os.Stderr, "w3cservice: -api %q: want girder or otel\n", *api)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	mux := http.NewServeMux()
	mux.Handle("POST /test", handler(p))
	log.Fatal(http.Serve(ln, mux))
}
