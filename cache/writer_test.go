package cache

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriterFuncs(t *testing.T) {
	ctx := context.Background()
	var got []Write[string, int]
	boom := errors.New("boom")
	w := WriterFuncs[string, int]{
		WriteFunc: func(_ context.Context, k string, v int) error {
			got = append(got, Write[string, int]{Key: k, Value: v})
			return nil
		},
		DeleteFunc: func(_ context.Context, k string) error {
			got = append(got, Write[string, int]{Key: k, Delete: true})
			return boom
		},
	}
	require.NoError(t, w.Write(ctx, "a", 1))
	assert.ErrorIs(t, w.Delete(ctx, "b"), boom)
	assert.Equal(t, []Write[string, int]{{Key: "a", Value: 1}, {Key: "b", Delete: true}}, got)
}

func TestWriterFuncsWithoutFuncs(t *testing.T) {
	var w WriterFuncs[string, int]
	assert.Error(t, w.Write(context.Background(), "a", 1))
	assert.Error(t, w.Delete(context.Background(), "a"))
}
