package otelbridge

import (
	"context"
	"sync"

	"github.com/girder-go/girder/tracing"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// TracerProvider is an OpenTelemetry trace.TracerProvider that records into a girder Tracer.
type TracerProvider struct {
	embedded.TracerProvider

	tracer  *tracing.Tracer
	mu      sync.Mutex
	tracers map[string]*otelTracer
}

var _ trace.TracerProvider = (*TracerProvider)(nil)

// NewTracerProvider returns a provider whose spans go through t: its sampler, limits, processors
// and exporters. Shutting t down ends the provider's recording too. A nil t gives a provider
// whose spans record nothing.
func NewTracerProvider(t *tracing.Tracer) *TracerProvider {
	return &TracerProvider{tracer: t, tracers: make(map[string]*otelTracer)}
}

// Tracer returns the tracer for an instrumentation scope; the same name returns the same
// tracer. An empty name means the girder Tracer's own scope. Version and schema URL are not
// recorded.
func (p *TracerProvider) Tracer(name string, _ ...trace.TracerOption) trace.Tracer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.tracers[name]; ok {
		return t
	}
	g := p.tracer
	if name != "" {
		g = g.WithScope(name)
	}
	t := &otelTracer{provider: p, g: g}
	p.tracers[name] = t
	return t
}

// otelTracer is the trace.Tracer of one instrumentation scope.
type otelTracer struct {
	embedded.Tracer

	provider *TracerProvider
	g        *tracing.Tracer
}

// maxStackAttrs attributes given at start are converted into an array on the stack.
const maxStackAttrs = 4

// Start starts a girder span and returns it as a trace.Span, in a context that holds it for both
// APIs.
func (t *otelTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	var (
		gopts [5]tracing.StartOption
		n     int
		stack [maxStackAttrs]tracing.Attr
	)
	c := startOptions(opts)
	if c.nattrs > 0 {
		var attrs []tracing.Attr
		if c.nattrs <= maxStackAttrs {
			attrs = stack[:0]
		} else {
			attrs = make([]tracing.Attr, 0, c.nattrs)
		}
		attrs = c.appendAttrs(attrs, opts)
		gopts[n] = tracing.WithAttributes(attrs...)
		n++
	}
	if cfg := c.cfg; cfg != nil {
		if k := cfg.SpanKind(); k > trace.SpanKindInternal && k <= trace.SpanKindConsumer {
			gopts[n] = tracing.WithSpanKind(tracing.SpanKind(k - 1))
			n++
		}
		if ts := cfg.Timestamp(); !ts.IsZero() {
			gopts[n] = tracing.WithStartTime(ts)
			n++
		}
		if links := cfg.Links(); len(links) > 0 {
			gopts[n] = tracing.WithLinks(convertLinks(links)...)
			n++
		}
		if cfg.NewRoot() {
			gopts[n] = tracing.WithNewRoot()
			n++
		}
	}
	gctx, gs := t.g.Start(girderContext(ctx), name, gopts[:n]...)
	s := &span{g: gs, ctx: ctx, gctx: gctx, provider: t.provider}
	return s, s
}

// startConfig is what the start options add up to: attributes counted and read in place, the
// rest applied by OpenTelemetry when there is any.
type startConfig struct {
	nattrs int
	cfg    *trace.SpanConfig // nil when the options held only attributes
}

func startOptions(opts []trace.SpanStartOption) startConfig {
	var c startConfig
	others := false
	for _, o := range opts {
		if kvs, ok := attributesOf(o); ok {
			c.nattrs += len(kvs)
			continue
		}
		others = true
	}
	if others {
		cfg := trace.NewSpanStartConfig(opts...)
		c.cfg = &cfg
		c.nattrs = len(cfg.Attributes())
	}
	return c
}

// appendAttrs appends the start attributes, converted, to dst.
func (c *startConfig) appendAttrs(dst []tracing.Attr, opts []trace.SpanStartOption) []tracing.Attr {
	if c.cfg != nil {
		return appendAttrs(dst, c.cfg.Attributes())
	}
	for _, o := range opts {
		kvs, _ := attributesOf(o)
		dst = appendAttrs(dst, kvs)
	}
	return dst
}
