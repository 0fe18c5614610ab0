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
	t := &otelTracer{g: g, scope: &scope{provider: p}}
	p.tracers[name] = t
	return t
}

// otelTracer is the trace.Tracer of one instrumentation scope.
type otelTracer struct {
	embedded.Tracer

	g     *tracing.Tracer
	scope *scope // for the tracer's spans
}

// maxStackAttrs attributes given at start are converted into an array on the stack, and handed
// to girder in options of four, which carry them without allocating.
const maxStackAttrs = 16

// Start starts a girder span and returns it as a trace.Span, in a context that holds it for both
// APIs. The girder span and the OpenTelemetry span are one allocation.
func (t *otelTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	if len(opts) == 0 {
		return t.start(ctx, name)
	}
	if n, others := countAttrs(opts); !others && n <= 4 {
		// Attributes alone, as most instrumentation gives them: one girder option.
		var stack [4]tracing.Attr
		return t.start(ctx, name, tracing.WithAttributes(appendOptionAttrs(stack[:0], opts)...))
	}
	var c startConfig
	c.gather(opts)
	return t.startConfigured(ctx, name, opts, &c)
}

// startConfigured starts a span with options other than four attributes or fewer.
func (t *otelTracer) startConfigured(ctx context.Context, name string, opts []trace.SpanStartOption, c *startConfig) (context.Context, trace.Span) {
	var (
		gopts [maxStackAttrs/4 + 4]tracing.StartOption
		n     int
		stack [maxStackAttrs]tracing.Attr
	)
	if c.nattrs > 0 {
		if c.nattrs <= maxStackAttrs {
			attrs := c.appendAttrs(stack[:0], opts)
			for i := 0; i < len(attrs); i += 4 {
				gopts[n] = tracing.WithAttributes(attrs[i:min(i+4, len(attrs))]...)
				n++
			}
		} else {
			gopts[n] = tracing.WithAttributes(c.appendAttrs(make([]tracing.Attr, 0, c.nattrs), opts)...)
			n++
		}
	}
	if c.others {
		cfg := &c.cfg
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
	return t.start(ctx, name, gopts[:n]...)
}

// start starts the girder span and the OpenTelemetry span in one allocation.
func (t *otelTracer) start(ctx context.Context, name string, opts ...tracing.StartOption) (context.Context, trace.Span) {
	if t.g == nil { // a provider without a girder Tracer: a span that records nothing
		s := &span{scope: t.scope}
		return trace.ContextWithSpan(ctx, s), s
	}
	_, gs, s := tracing.StartWith[span](t.g, girderContext(ctx), name, opts...)
	s.g, s.scope = gs, t.scope
	return s, s
}

// startConfig is what the start options add up to: attributes counted and read in place, the
// other options applied by OpenTelemetry when there are any.
type startConfig struct {
	nattrs int
	others bool             // options other than attributes were given: cfg holds them
	cfg    trace.SpanConfig // of the other options only, so that the attributes are not copied
}

// maxStackOptions options other than attributes are gathered on the stack for OpenTelemetry's
// config.
const maxStackOptions = 8

// countAttrs counts the attributes of the trace.WithAttributes options in opts, and reports
// whether there are other options.
func countAttrs(opts []trace.SpanStartOption) (n int, others bool) {
	for _, o := range opts {
		if kvs, ok := attributesOf(o); ok {
			n += len(kvs)
		} else {
			others = true
		}
	}
	return n, others
}

// gather adds up opts into c, which is zero.
func (c *startConfig) gather(opts []trace.SpanStartOption) {
	var stack [maxStackOptions]trace.SpanStartOption
	others := stack[:0]
	for _, o := range opts {
		if kvs, ok := attributesOf(o); ok {
			c.nattrs += len(kvs)
			continue
		}
		others = append(others, o)
	}
	if len(others) > 0 {
		c.cfg = trace.NewSpanStartConfig(others...)
		c.others = true
		c.nattrs += len(c.cfg.Attributes()) // none unless attributesOf declines
	}
}

// appendAttrs appends the start attributes, converted, to dst.
func (c *startConfig) appendAttrs(dst []tracing.Attr, opts []trace.SpanStartOption) []tracing.Attr {
	return appendAttrs(appendOptionAttrs(dst, opts), c.cfg.Attributes())
}

// appendOptionAttrs appends the attributes of the trace.WithAttributes options, converted, to dst.
func appendOptionAttrs(dst []tracing.Attr, opts []trace.SpanStartOption) []tracing.Attr {
	for _, o := range opts {
		if kvs, ok := attributesOf(o); ok {
			dst = appendAttrs(dst, kvs)
		}
	}
	return dst
}
