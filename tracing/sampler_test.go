package tracing

import (
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func traceIDWithLow(v uint64) TraceID {
	var id TraceID
	id[0] = 1
	binary.BigEndian.PutUint64(id[8:], v)
	return id
}

func TestTraceIDRatio(t *testing.T) {
	tests := []struct {
		name     string
		fraction float64
		low      uint64 // last 8 bytes of the trace ID
		want     bool
	}{
		{"zero samples nothing", 0, 0, false},
		{"negative samples nothing", -1, 0, false},
		{"NaN samples nothing", math.NaN(), 0, false},
		{"one samples everything", 1, math.MaxUint64, true},
		{"above one samples everything", 2, math.MaxUint64, true},
		{"half: just below the bound", 0.5, (1<<62-1)<<1 | 1, true},
		{"half: at the bound", 0.5, 1 << 63, false},
		{"the shifted-out bit does not count", 0.5, 1<<63 - 1, true},
		{"quarter: below", 0.25, 1<<62 - 1, true},
		{"quarter: at", 0.25, 1 << 62, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := TraceIDRatio(tt.fraction)
			assert.Equal(t, tt.want, s.Sample(traceIDWithLow(tt.low)))
			want := Drop
			if tt.want {
				want = RecordAndSample
			}
			assert.Equal(t, want, s.ShouldSample(SamplingParameters{TraceID: traceIDWithLow(tt.low)}))
		})
	}
}

func TestTraceIDRatioSamplesTheFraction(t *testing.T) {
	s := TraceIDRatio(0.1)
	const n = 100_000
	kept := 0
	for range n {
		if s.Sample(newTraceID()) {
			kept++
		}
	}
	assert.InDelta(t, 0.1, float64(kept)/n, 0.01)
}

func TestParentBased(t *testing.T) {
	valid := SpanContext{TraceID: traceIDWithLow(1), SpanID: SpanID{1}}
	sampled := valid
	sampled.Flags = FlagSampled
	remote := valid
	remote.Remote = true
	remoteSampled := sampled
	remoteSampled.Remote = true
	custom := SamplerFunc(func(SamplingParameters) Decision { return RecordOnly })
	tests := []struct {
		name    string
		sampler *ParentBasedSampler
		parent  SpanContext
		want    Decision
	}{
		{"root, default", &ParentBasedSampler{}, SpanContext{}, RecordAndSample},
		{"root, never", ParentBased(NeverSample()), SpanContext{}, Drop},
		{"local sampled", ParentBased(NeverSample()), sampled, RecordAndSample},
		{"local not sampled", ParentBased(AlwaysSample()), valid, Drop},
		{"remote sampled", ParentBased(NeverSample()), remoteSampled, RecordAndSample},
		{"remote not sampled", ParentBased(AlwaysSample()), remote, Drop},
		{"remote sampled, custom", &ParentBasedSampler{RemoteSampled: custom}, remoteSampled, RecordOnly},
		{"remote not sampled, custom", &ParentBasedSampler{RemoteNotSampled: custom}, remote, RecordOnly},
		{"local sampled, custom", &ParentBasedSampler{LocalSampled: custom}, sampled, RecordOnly},
		{"local not sampled, custom", &ParentBasedSampler{LocalNotSampled: custom}, valid, RecordOnly},
		{"root, ratio", ParentBased(TraceIDRatio(0)), SpanContext{}, Drop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := SamplingParameters{Parent: tt.parent, TraceID: traceIDWithLow(1)}
			assert.Equal(t, tt.want, tt.sampler.ShouldSample(p))
			assert.Equal(t, tt.want, decide(tt.sampler, &p.Parent, p.TraceID, "", 0, nil, 0), "the fast path agrees")
		})
	}
}

func TestCustomSamplerSeesStartAttributes(t *testing.T) {
	var got SamplingParameters
	tr, err := New(Options{Sampler: SamplerFunc(func(p SamplingParameters) Decision {
		got = p
		return Drop
	})})
	require.NoError(t, err)
	attrs := []Attr{String("a", "1"), Int("b", 2), Bool("c", true), Float64("d", 4), String("e", "5")}
	_, span := tr.Start(context.Background(), "op", WithAttributes(attrs...), WithSpanKind(SpanKindServer))
	assert.False(t, span.IsRecording())
	assert.Equal(t, attrs, got.Attributes)
	assert.Equal(t, "op", got.Name)
	assert.Equal(t, SpanKindServer, got.Kind)
	assert.Equal(t, span.SpanContext().TraceID, got.TraceID)
}

func TestDecisionString(t *testing.T) {
	assert.Equal(t, "drop", Drop.String())
	assert.Equal(t, "record-and-sample", RecordAndSample.String())
	assert.Equal(t, "Decision(9)", Decision(9).String())
}

func TestNilSamplersDoNotPanic(t *testing.T) {
	p := SamplingParameters{TraceID: traceIDWithLow(1)}
	var ratio *RatioSampler
	var parent *ParentBasedSampler
	var fn SamplerFunc
	assert.Equal(t, Drop, ratio.ShouldSample(p))
	assert.Equal(t, RecordAndSample, parent.ShouldSample(p), "a nil ParentBasedSampler is the default")
	assert.Equal(t, Drop, fn.ShouldSample(p))
	for _, s := range []Sampler{ratio, parent, fn} {
		tr, err := New(Options{Sampler: s})
		require.NoError(t, err)
		_, span := tr.Start(context.Background(), "op")
		span.End()
	}
}
