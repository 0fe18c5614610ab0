package tracing

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Decision is a sampler's answer for a new span.
type Decision uint8

// The decisions, as in OpenTelemetry.
const (
	Drop            Decision = iota // not recorded; the span only carries its context
	RecordOnly                      // recorded but not sampled: never exported
	RecordAndSample                 // recorded, sampled, exported
)

var decisionNames = [...]string{"drop", "record-only", "record-and-sample"}

// String returns the decision's name.
func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// SamplingParameters is what a sampler knows about a span about to start.
type SamplingParameters struct {
	Parent     SpanContext // the parent's context; invalid for a root span
	TraceID    TraceID     // the trace the span belongs to (new for a root span)
	Name       string
	Kind       SpanKind
	Attributes []Attr // the attributes given with WithAttributes
}

// Sampler decides whether a new span is recorded and sampled. Implementations must be safe for
// concurrent use.
type Sampler interface {
	ShouldSample(p SamplingParameters) Decision
}

// SamplerFunc adapts a function to Sampler.
type SamplerFunc func(p SamplingParameters) Decision

// ShouldSample calls f(p); a nil f drops.
func (f SamplerFunc) ShouldSample(p SamplingParameters) Decision {
	if f == nil {
		return Drop
	}
	return f(p)
}

type alwaysSampler struct{}

func (alwaysSampler) ShouldSample(SamplingParameters) Decision { return RecordAndSample }

type neverSampler struct{}

func (neverSampler) ShouldSample(SamplingParameters) Decision { return Drop }

// AlwaysSample returns a sampler that samples every span.
func AlwaysSample() Sampler { return alwaysSampler{} }

// NeverSample returns a sampler that samples no span.
func NeverSample() Sampler { return neverSampler{} }

// RatioSampler samples a fraction of traces, decided by the trace ID alone, so every service
// using the same fraction (with girder or with OpenTelemetry's TraceIDRatioBased) makes the same
// decision for a trace.
type RatioSampler struct {
	bound uint64
}

// TraceIDRatio returns a sampler that samples the given fraction of traces, by OpenTelemetry's
// algorithm: the last 8 bytes of the trace ID, big endian, shifted right by one, are compared
// with fraction·2⁶³. A fraction ≥ 1 samples everything; ≤ 0 or NaN, nothing. To honour the
// parent's decision, use it as ParentBasedSampler's Root.
func TraceIDRatio(fraction float64) *RatioSampler {
	switch {
	case fraction >= 1:
		return &RatioSampler{bound: math.MaxUint64}
	case fraction > 0:
		return &RatioSampler{bound: uint64(fraction * (1 << 63))}
	}
	return &RatioSampler{}
}

// Sample reports whether the trace is sampled.
func (s *RatioSampler) Sample(id TraceID) bool {
	if s == nil {
		return false
	}
	return binary.BigEndian.Uint64(id[8:16])>>1 < s.bound
}

// ShouldSample samples by p.TraceID, ignoring the parent.
func (s *RatioSampler) ShouldSample(p SamplingParameters) Decision {
	if s.Sample(p.TraceID) {
		return RecordAndSample
	}
	return Drop
}

// ParentBasedSampler follows the parent's decision and asks Root for root spans. Each field may
// be nil, meaning: Root AlwaysSample, RemoteSampled and LocalSampled AlwaysSample,
// RemoteNotSampled and LocalNotSampled NeverSample.
type ParentBasedSampler struct {
	Root             Sampler // spans without a parent
	RemoteSampled    Sampler // parent from another process, sampled
	RemoteNotSampled Sampler // parent from another process, not sampled
	LocalSampled     Sampler // parent in this process, sampled
	LocalNotSampled  Sampler // parent in this process, not sampled
}

// ParentBased returns a ParentBasedSampler that asks root about root spans and otherwise
// follows the parent; it is the default sampler with AlwaysSample as root.
func ParentBased(root Sampler) *ParentBasedSampler { return &ParentBasedSampler{Root: root} }

// pick returns the sampler to ask for a span with this parent, and the decision when the
// default applies (that sampler is then nil).
func (s *ParentBasedSampler) pick(parent *SpanContext) (Sampler, Decision) {
	if s == nil {
		s = defaultSampler
	}
	var next Sampler
	var def Decision
	switch {
	case !parent.IsValid():
		next, def = s.Root, RecordAndSample
	case parent.Remote && parent.IsSampled():
		next, def = s.RemoteSampled, RecordAndSample
	case parent.Remote:
		next, def = s.RemoteNotSampled, Drop
	case parent.IsSampled():
		next, def = s.LocalSampled, RecordAndSample
	default:
		next, def = s.LocalNotSampled, Drop
	}
	return next, def
}

// ShouldSample follows p.Parent, or asks the sampler chosen for this case.
func (s *ParentBasedSampler) ShouldSample(p SamplingParameters) Decision {
	next, def := s.pick(&p.Parent)
	if next == nil {
		return def
	}
	return next.ShouldSample(p)
}

var defaultSampler = &ParentBasedSampler{}

// decide asks s about a new span. The built-in samplers are answered here without building
// SamplingParameters, and the attributes given to Start never escape to the heap; other samplers
// get them in a copy.
func decide(s Sampler, parent *SpanContext, traceID TraceID, name string, kind SpanKind, opts []StartOption, nattrs int) Decision {
	if s == nil {
		s = defaultSampler
	}
	for {
		switch v := s.(type) {
		case alwaysSampler:
			return RecordAndSample
		case neverSampler:
			return Drop
		case *RatioSampler:
			if v.Sample(traceID) {
				return RecordAndSample
			}
			return Drop
		case *ParentBasedSampler:
			next, def := v.pick(parent)
			if next == nil {
				return def
			}
			s = next
			continue
		}
		p := SamplingParameters{Parent: *parent, TraceID: traceID, Name: name, Kind: kind}
		if nattrs > 0 {
			attrs := make([]Attr, 0, nattrs)
			for i := range opts {
				attrs = opts[i].appendAttrs(attrs)
			}
			p.Attributes = attrs
		}
		return s.ShouldSample(p)
	}
}
