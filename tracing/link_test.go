package tracing

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLinks(t *testing.T) {
	other := SpanContext{TraceID: TraceID{1}, SpanID: SpanID{2}, Flags: FlagSampled}
	third := SpanContext{TraceID: TraceID{3}, SpanID: SpanID{4}}
	tests := []struct {
		name        string
		limits      Limits
		start       []Link
		added       []Link
		want        []Link
		wantDropped int
	}{
		{"none", Limits{}, nil, nil, nil, 0},
		{"at start", Limits{}, []Link{{SpanContext: other, Attributes: []Attr{Int("n", 1)}}}, nil,
			[]Link{{SpanContext: other, Attributes: []Attr{Int("n", 1)}}}, 0},
		{"added later", Limits{}, nil, []Link{{SpanContext: third}}, []Link{{SpanContext: third}}, 0},
		{"both, in order", Limits{}, []Link{{SpanContext: other}}, []Link{{SpanContext: third}},
			[]Link{{SpanContext: other}, {SpanContext: third}}, 0},
		{"invalid ignored", Limits{}, []Link{{}}, []Link{{}}, nil, 0},
		{"over the limit", Limits{MaxLinks: 1}, []Link{{SpanContext: other}}, []Link{{SpanContext: third}},
			[]Link{{SpanContext: other}}, 1},
		{"link attributes limited", Limits{MaxLinkAttributes: 1}, []Link{{SpanContext: other, Attributes: []Attr{Int("a", 1), Int("b", 2)}}}, nil,
			[]Link{{SpanContext: other, Attributes: []Attr{Int("a", 1)}, DroppedAttributes: 1}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTestTracer(t, Options{Limits: tt.limits})
			_, span := tr.Start(context.Background(), "op", WithLinks(tt.start...))
			for _, l := range tt.added {
				span.AddLink(l)
			}
			span.End()
			span.AddLink(Link{SpanContext: other}) // after End: nothing
			d := onlySpan(t, exp)
			assert.Equal(t, tt.want, d.Links)
			assert.Equal(t, tt.wantDropped, d.DroppedLinks)
		})
	}
}

func TestWithLinksCopies(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	links := []Link{{SpanContext: SpanContext{TraceID: TraceID{1}, SpanID: SpanID{1}}}}
	_, span := tr.Start(context.Background(), "op", WithLinks(links...))
	links[0].SpanContext.SpanID = SpanID{9}
	span.End()
	assert.Equal(t, SpanID{1}, onlySpan(t, exp).Links[0].SpanContext.SpanID)
}

func TestAddEventAt(t *testing.T) {
	tr, exp := newTestTracer(t, Options{Limits: Limits{MaxEvents: 2}})
	at := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	_, span := tr.Start(context.Background(), "op")
	span.AddEventAt(at, "earlier", String("k", "v"))
	span.AddEvent("now")
	span.AddEventAt(at, "dropped")
	span.End()
	d := onlySpan(t, exp)
	require.Len(t, d.Events, 2)
	assert.True(t, d.Events[0].Time.Equal(at))
	assert.Equal(t, []Attr{String("k", "v")}, d.Events[0].Attributes)
	assert.Equal(t, 1, d.DroppedEvents)
}

func TestWithScope(t *testing.T) {
	tr, exp := newTestTracer(t, Options{Name: "app"})
	scoped := tr.WithScope("lib").WithScope("lib2")
	ctx, parent := tr.Start(context.Background(), "parent")
	_, child := scoped.Start(ctx, "child")
	child.End()
	parent.End()
	spans := exp.Spans()
	require.Len(t, spans, 2)
	assert.Equal(t, "lib2", spans[0].Scope)
	assert.Equal(t, "app", spans[1].Scope)
	assert.Equal(t, spans[1].SpanContext.SpanID, spans[0].Parent.SpanID)

	require.NoError(t, scoped.Shutdown(context.Background()), "shuts the tracer it was made from down")
	_, late := tr.Start(context.Background(), "late")
	assert.False(t, late.IsRecording())
	_, late = scoped.Start(context.Background(), "late")
	assert.False(t, late.IsRecording())
	assert.ErrorIs(t, tr.Shutdown(context.Background()), ErrClosed)
	assert.Nil(t, (*Tracer)(nil).WithScope("x"))
}
