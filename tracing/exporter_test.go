package tracing

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInMemoryExporter(t *testing.T) {
	var exp InMemoryExporter
	ctx := context.Background()
	require.NoError(t, exp.ExportSpans(ctx, []SpanData{{Name: "a"}, {Name: "b"}}))
	spans := exp.Spans()
	require.Len(t, spans, 2)
	spans[0].Name = "changed"
	assert.Equal(t, "a", exp.Spans()[0].Name, "Spans returns a copy")
	exp.Reset()
	assert.Empty(t, exp.Spans())

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, exp.ExportSpans(canceled, []SpanData{{}}), context.Canceled)
	require.NoError(t, exp.Shutdown(ctx))
	require.ErrorIs(t, exp.ExportSpans(ctx, []SpanData{{}}), ErrClosed)
}

// jsonLine mirrors what appendJSON writes.
type jsonLine struct {
	Name         string         `json:"name"`
	TraceID      string         `json:"traceId"`
	SpanID       string         `json:"spanId"`
	ParentSpanID string         `json:"parentSpanId"`
	ParentRemote bool           `json:"parentRemote"`
	TraceState   string         `json:"traceState"`
	Kind         string         `json:"kind"`
	Scope        string         `json:"scope"`
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	DurationNs   int64          `json:"durationNs"`
	Attributes   map[string]any `json:"attributes"`
	Dropped      int            `json:"droppedAttributes"`
	Events       []struct {
		Name       string         `json:"name"`
		Time       time.Time      `json:"time"`
		Attributes map[string]any `json:"attributes"`
		Dropped    int            `json:"droppedAttributes"`
	} `json:"events"`
	DroppedEvents int `json:"droppedEvents"`
	Status        struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
}

func sampleSpanData(t testing.TB) SpanData {
	state, err := ParseTraceState("vendor=x")
	require.NoError(t, err)
	start := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	return SpanData{
		Name:        "GET /users/{id}",
		SpanContext: SpanContext{TraceID: traceIDWithLow(42), SpanID: SpanID{1, 2, 3, 4, 5, 6, 7, 8}, Flags: FlagSampled, State: state},
		Parent:      SpanContext{TraceID: traceIDWithLow(42), SpanID: SpanID{9}, Remote: true},
		Kind:        SpanKindServer,
		Start:       start,
		End:         start.Add(1500 * time.Microsecond),
		Attributes: []Attr{String("s", "quote\" \n"), Int64("i", math.MaxInt64), Float64("f", 0.25),
			Float64("nan", math.NaN()), Bool("b", true)},
		Events:            []Event{{Name: "exception", Time: start.Add(time.Millisecond), Attributes: []Attr{String("exception.message", "boom")}, DroppedAttributes: 2}},
		Status:            Status{Code: StatusError, Description: "boom"},
		DroppedAttributes: 3,
		DroppedEvents:     4,
		Scope:             "test",
	}
}

func TestJSONExporter(t *testing.T) {
	var buf bytes.Buffer
	exp := NewJSONExporter(&buf)
	d := sampleSpanData(t)
	root := SpanData{Name: "root", SpanContext: SpanContext{TraceID: traceIDWithLow(1), SpanID: SpanID{1}}, Start: d.Start, End: d.Start}
	require.NoError(t, exp.ExportSpans(context.Background(), []SpanData{d, root}))

	sc := bufio.NewScanner(&buf)
	var lines []jsonLine
	for sc.Scan() {
		var l jsonLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		lines = append(lines, l)
	}
	require.Len(t, lines, 2)
	l := lines[0]
	assert.Equal(t, d.Name, l.Name)
	assert.Equal(t, d.SpanContext.TraceID.String(), l.TraceID)
	assert.Equal(t, "0102030405060708", l.SpanID)
	assert.Equal(t, d.Parent.SpanID.String(), l.ParentSpanID)
	assert.True(t, l.ParentRemote)
	assert.Equal(t, "vendor=x", l.TraceState)
	assert.Equal(t, "server", l.Kind)
	assert.Equal(t, "test", l.Scope)
	assert.True(t, l.Start.Equal(d.Start))
	assert.True(t, l.End.Equal(d.End))
	assert.Equal(t, int64(1500_000), l.DurationNs)
	assert.Equal(t, map[string]any{"s": "quote\" \n", "i": float64(math.MaxInt64), "f": 0.25, "nan": "NaN", "b": true}, l.Attributes)
	assert.Equal(t, 3, l.Dropped)
	require.Len(t, l.Events, 1)
	assert.Equal(t, "exception", l.Events[0].Name)
	assert.Equal(t, map[string]any{"exception.message": "boom"}, l.Events[0].Attributes)
	assert.Equal(t, 2, l.Events[0].Dropped)
	assert.Equal(t, 4, l.DroppedEvents)
	assert.Equal(t, "error", l.Status.Code)
	assert.Equal(t, "boom", l.Status.Message)

	assert.Empty(t, lines[1].ParentSpanID)
	assert.Empty(t, lines[1].Status.Code)
	assert.Nil(t, lines[1].Attributes)

	require.NoError(t, exp.Shutdown(context.Background()))
	require.ErrorIs(t, exp.ExportSpans(context.Background(), []SpanData{d}), ErrClosed)
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestJSONExporterErrors(t *testing.T) {
	require.ErrorContains(t, NewJSONExporter(failingWriter{}).ExportSpans(context.Background(), []SpanData{{}}), "disk full")
	require.NoError(t, NewJSONExporter(nil).ExportSpans(context.Background(), []SpanData{{}}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, NewJSONExporter(nil).ExportSpans(ctx, []SpanData{{}}), context.Canceled)
}

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`quote " and \ backslash`, `"quote \" and \\ backslash"`},
		{"new\nline\ttab\rcr", `"new\nline\ttab\rcr"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"é 日本", `"é 日本"`},
		{"bad \xff utf8", `"bad \ufffd utf8"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"", `""`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(appendJSONString(nil, tt.in)), "%q", tt.in)
	}
}

func TestAppendJSONFloat(t *testing.T) {
	assert.Equal(t, "1.5", string(appendJSONFloat(nil, 1.5)))
	assert.Equal(t, `"NaN"`, string(appendJSONFloat(nil, math.NaN())))
	assert.Equal(t, `"Infinity"`, string(appendJSONFloat(nil, math.Inf(1))))
	assert.Equal(t, `"-Infinity"`, string(appendJSONFloat(nil, math.Inf(-1))))
	assert.Equal(t, `"1000000000"`, string(appendUnixNanoString(nil, time.Unix(1, 0))))
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00", "\xff\xfe", "日本", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(out, &back), "%q gave %s", s, out)
		if utf8.ValidString(s) {
			require.Equal(t, s, back)
		} else {
			require.Equal(t, collapseFFFD(strings.ToValidUTF8(s, "\ufffd")), collapseFFFD(back), "invalid bytes become U+FFFD")
		}
	})
}

func collapseFFFD(s string) string {
	for strings.Contains(s, "\ufffd\ufffd") {
		s = strings.ReplaceAll(s, "\ufffd\ufffd", "\ufffd")
	}
	return s
}

// TestExporterContract runs what every Exporter promises against each built-in one: an empty
// export succeeds, a canceled context is honoured, and after Shutdown exports fail with
// ErrClosed.
func TestExporterContract(t *testing.T) {
	c := newCollector(t)
	exporters := map[string]func(t *testing.T) Exporter{
		"in-memory": func(*testing.T) Exporter { return &InMemoryExporter{} },
		"json":      func(*testing.T) Exporter { return NewJSONExporter(&bytes.Buffer{}) },
		"otlp": func(t *testing.T) Exporter {
			e, err := NewOTLPExporter(OTLPOptions{URL: c.srv.URL, Retry: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
			require.NoError(t, err)
			return e
		},
	}
	for name, newExporter := range exporters {
		t.Run(name, func(t *testing.T) {
			exp := newExporter(t)
			ctx := context.Background()
			require.NoError(t, exp.ExportSpans(ctx, nil))
			require.NoError(t, exp.ExportSpans(ctx, []SpanData{sampleSpanData(t)}))

			canceled, cancel := context.WithCancel(ctx)
			cancel()
			require.ErrorIs(t, exp.ExportSpans(canceled, []SpanData{sampleSpanData(t)}), context.Canceled)

			require.NoError(t, exp.Shutdown(ctx))
			require.ErrorIs(t, exp.ExportSpans(ctx, []SpanData{sampleSpanData(t)}), ErrClosed)
		})
	}
}
