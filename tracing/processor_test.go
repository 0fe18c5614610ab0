package tracing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSyncProcessor(t *testing.T) {
	exp := &gatedExporter{}
	sp, err := NewSyncProcessor(exp, nil)
	require.NoError(t, err)
	tr, err := New(Options{Processors: []Processor{sp}})
	require.NoError(t, err)
	endSpans(tr, 2)
	assert.Equal(t, []int{1, 1}, exp.sizes(), "one export per span, at once")
	require.NoError(t, sp.ForceFlush(context.Background()))
	require.NoError(t, sp.Shutdown(context.Background()))
	require.ErrorIs(t, sp.Shutdown(context.Background()), ErrClosed)
	_, s := tr.Start(context.Background(), "late")
	s.End()
	assert.Equal(t, []int{1, 1}, exp.sizes(), "nothing after Shutdown")
}

func TestSyncProcessorLogsErrors(t *testing.T) {
	var logs bytes.Buffer
	sp, err := NewSyncProcessor(&gatedExporter{err: errors.New("collector down")}, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	tr, err := New(Options{Processors: []Processor{sp}})
	require.NoError(t, err)
	endSpans(tr, 1)
	assert.Contains(t, logs.String(), "collector down")

	_, err = NewSyncProcessor(nil, nil)
	require.Error(t, err)
}
