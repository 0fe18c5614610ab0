package tracing

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	validTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	validSpanID  = "00f067aa0ba902b7"
)

func mustTraceID(t testing.TB, s string) TraceID {
	t.Helper()
	var id TraceID
	require.True(t, unhex(id[:], s))
	return id
}

func mustSpanID(t testing.TB, s string) SpanID {
	t.Helper()
	var id SpanID
	require.True(t, unhex(id[:], s))
	return id
}

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		ok      bool
		sampled bool
		flags   TraceFlags
	}{
		{"sampled", "00-" + validTraceID + "-" + validSpanID + "-01", true, true, FlagSampled},
		{"not sampled", "00-" + validTraceID + "-" + validSpanID + "-00", true, false, 0},
		{"random flag kept", "00-" + validTraceID + "-" + validSpanID + "-03", true, true, FlagSampled | FlagRandom},
		{"unknown flags cleared", "00-" + validTraceID + "-" + validSpanID + "-ff", true, true, FlagSampled | FlagRandom},
		{"surrounding white space", " \t00-" + validTraceID + "-" + validSpanID + "-01 ", true, true, FlagSampled},
		{"higher version, same length", "cc-" + validTraceID + "-" + validSpanID + "-01", true, true, FlagSampled},
		{"higher version, more fields", "cc-" + validTraceID + "-" + validSpanID + "-01-what-the-future-holds", true, true, FlagSampled},
		{"version fe", "fe-" + validTraceID + "-" + validSpanID + "-00", true, false, 0},
		{"version ff", "ff-" + validTraceID + "-" + validSpanID + "-01", false, false, 0},
		{"version 00 with more fields", "00-" + validTraceID + "-" + validSpanID + "-01-extra", false, false, 0},
		{"higher version, no dash after flags", "cc-" + validTraceID + "-" + validSpanID + "-01x", false, false, 0},
		{"uppercase trace-id", "00-" + strings.ToUpper(validTraceID) + "-" + validSpanID + "-01", false, false, 0},
		{"uppercase version", "0A-" + validTraceID + "-" + validSpanID + "-01", false, false, 0},
		{"all-zero trace-id", "00-" + strings.Repeat("0", 32) + "-" + validSpanID + "-01", false, false, 0},
		{"all-zero parent-id", "00-" + validTraceID + "-" + strings.Repeat("0", 16) + "-01", false, false, 0},
		{"short trace-id", "00-" + validTraceID[1:] + "-" + validSpanID + "-01", false, false, 0},
		{"long span-id", "00-" + validTraceID + "-" + validSpanID + "0-01", false, false, 0},
		{"bad delimiter", "00_" + validTraceID + "-" + validSpanID + "-01", false, false, 0},
		{"non-hex flags", "00-" + validTraceID + "-" + validSpanID + "-0g", false, false, 0},
		{"non-hex trace-id", "00-" + validTraceID[:31] + "z-" + validSpanID + "-01", false, false, 0},
		{"empty", "", false, false, 0},
		{"garbage", "hello world", false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := ParseTraceparent(tt.in)
			if !tt.ok {
				require.ErrorIs(t, err, ErrInvalidTraceparent)
				assert.False(t, sc.IsValid())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, mustTraceID(t, validTraceID), sc.TraceID)
			assert.Equal(t, mustSpanID(t, validSpanID), sc.SpanID)
			assert.Equal(t, tt.sampled, sc.IsSampled())
			assert.Equal(t, tt.flags, sc.Flags)
			assert.True(t, sc.Remote)
		})
	}
}

func TestFormatTraceparent(t *testing.T) {
	sc := SpanContext{TraceID: mustTraceID(t, validTraceID), SpanID: mustSpanID(t, validSpanID), Flags: FlagSampled | 0x80}
	assert.Equal(t, "00-"+validTraceID+"-"+validSpanID+"-01", FormatTraceparent(sc))
}

// funcCarrier is a Carrier other than http.Header and MapCarrier, as a message transport might
// have.
type funcCarrier struct {
	get func(string) string
	set func(string, string)
}

func (c funcCarrier) Get(k string) string { return c.get(k) }
func (c funcCarrier) Set(k, v string)     { c.set(k, v) }

func newFuncCarrier() funcCarrier {
	m := map[string]string{}
	return funcCarrier{get: func(k string) string { return m[k] }, set: func(k, v string) { m[k] = v }}
}

func TestInjectExtractRoundTrip(t *testing.T) {
	state, err := ParseTraceState("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	require.NoError(t, err)
	sc := SpanContext{TraceID: mustTraceID(t, validTraceID), SpanID: mustSpanID(t, validSpanID), Flags: FlagSampled, State: state}
	ctx := ContextWithRemoteSpanContext(context.Background(), sc)
	for _, c := range []struct {
		name    string
		carrier Carrier
	}{{"http.Header", http.Header{}}, {"MapCarrier", MapCarrier{}}, {"other", newFuncCarrier()}} {
		t.Run(c.name, func(t *testing.T) {
			Inject(ctx, c.carrier)
			assert.Equal(t, "00-"+validTraceID+"-"+validSpanID+"-01", c.carrier.Get(TraceparentHeader))
			assert.Equal(t, state.String(), c.carrier.Get(TracestateHeader))
			got := SpanContextFromContext(Extract(context.Background(), c.carrier))
			assert.Equal(t, sc.TraceID, got.TraceID)
			assert.Equal(t, sc.SpanID, got.SpanID)
			assert.Equal(t, sc.Flags, got.Flags)
			assert.Equal(t, state, got.State)
			assert.True(t, got.Remote)
		})
	}
}

func TestMapCarrier(t *testing.T) {
	m := MapCarrier{}
	sc := SpanContext{TraceID: mustTraceID(t, validTraceID), SpanID: mustSpanID(t, validSpanID)}
	Inject(ContextWithRemoteSpanContext(context.Background(), sc), m)
	assert.Equal(t, map[string]string{TraceparentHeader: "00-" + validTraceID + "-" + validSpanID + "-00"}, map[string]string(m),
		"the lowercase header names, and no tracestate when it is empty")
	assert.Equal(t, []string{TraceparentHeader}, m.Keys())
	assert.Empty(t, m.Get("Traceparent"), "keys are used exactly as given")

	var nilMap MapCarrier
	assert.NotPanics(t, func() { Inject(ContextWithRemoteSpanContext(context.Background(), sc), nilMap) })
	assert.Empty(t, nilMap.Get(TraceparentHeader))
	assert.Empty(t, nilMap.Keys())
	assert.False(t, SpanContextFromContext(Extract(context.Background(), nilMap)).IsValid())
}

func TestInjectWithoutSpanWritesNothing(t *testing.T) {
	h := http.Header{}
	Inject(context.Background(), h)
	//lint:ignore SA1012 nil must not panic
	Inject(nil, h)
	Inject(context.Background(), nil)
	assert.Empty(t, h)
}

func TestInjectRemovesStaleTracestate(t *testing.T) {
	h := http.Header{}
	h.Set(TracestateHeader, "old=1")
	sc := SpanContext{TraceID: mustTraceID(t, validTraceID), SpanID: mustSpanID(t, validSpanID)}
	Inject(ContextWithRemoteSpanContext(context.Background(), sc), h)
	assert.Empty(t, h.Get(TracestateHeader))
}

func TestExtractRejects(t *testing.T) {
	good := "00-" + validTraceID + "-" + validSpanID + "-01"
	tests := []struct {
		name   string
		header http.Header
	}{
		{"no header", http.Header{}},
		{"two traceparents", http.Header{"Traceparent": {good, good}}},
		{"invalid traceparent", http.Header{"Traceparent": {"00-xyz"}}},
		{"invalid traceparent with tracestate", http.Header{"Traceparent": {"ff" + good[2:]}, "Tracestate": {"a=b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			assert.Equal(t, ctx, Extract(ctx, tt.header))
		})
	}
	//lint:ignore SA1012 nil must not panic
	assert.NotNil(t, Extract(nil, http.Header{}))
	assert.NotNil(t, Extract(context.Background(), nil))
}

func TestExtractKeepsTraceparentWhenTracestateIsInvalid(t *testing.T) {
	h := http.Header{"Traceparent": {"00-" + validTraceID + "-" + validSpanID + "-01"}, "Tracestate": {"UPPER=x"}}
	sc := SpanContextFromContext(Extract(context.Background(), h))
	require.True(t, sc.IsValid())
	assert.Equal(t, TraceState{}, sc.State)
}

func TestExtractJoinsTracestateLines(t *testing.T) {
	h := http.Header{"Traceparent": {"00-" + validTraceID + "-" + validSpanID + "-01"}, "Tracestate": {"a=1", "b=2"}}
	sc := SpanContextFromContext(Extract(context.Background(), h))
	assert.Equal(t, "a=1,b=2", sc.State.String())
}

func FuzzParseTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-" + validTraceID + "-" + validSpanID + "-01",
		"cc-" + validTraceID + "-" + validSpanID + "-01-more",
		"ff-" + validTraceID + "-" + validSpanID + "-01",
		"00-00000000000000000000000000000000-" + validSpanID + "-01",
		"", "-", strings.Repeat("-", 55),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseTraceparent(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidTraceparent) || sc.IsValid() {
				t.Fatalf("error %v with span context %+v", err, sc)
			}
			return
		}
		if !sc.IsValid() || sc.Flags&^knownFlags != 0 {
			t.Fatalf("accepted %q as %+v", s, sc)
		}
		again, err := ParseTraceparent(FormatTraceparent(sc))
		if err != nil || again != sc {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}

func FuzzExtract(f *testing.F) {
	f.Add("00-"+validTraceID+"-"+validSpanID+"-01", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	f.Add("00-"+validTraceID+"-"+validSpanID+"-00", "a=1,,b=2 ")
	f.Add("ff-"+validTraceID+"-"+validSpanID+"-01", "")
	f.Add("", "a=1")
	f.Fuzz(func(t *testing.T, tp, ts string) {
		h := http.Header{"Traceparent": {tp}, "Tracestate": {ts}}
		ctx := context.Background()
		got := Extract(ctx, h)
		sc := SpanContextFromContext(got)
		if !sc.IsValid() {
			if got != ctx {
				t.Fatalf("invalid span context in a new context for %q", tp)
			}
			return
		}
		out := http.Header{}
		Inject(got, out)
		again := SpanContextFromContext(Extract(ctx, out))
		if again != sc {
			t.Fatalf("round trip: %+v became %+v", sc, again)
		}
	})
}
