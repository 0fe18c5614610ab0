package cache

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetWriteThrough(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		invalidate bool
		failing    error
		wantErr    bool
		wantRow    int  // in the database afterwards
		wantCached bool // levels hold a value afterwards
		wantValue  int  // the value they hold
	}{
		{name: "update levels", wantRow: 2, wantCached: true, wantValue: 2},
		{name: "invalidate levels", invalidate: true, wantRow: 2, wantCached: false},
		{name: "store fails: levels untouched", failing: errors.New("db down"), wantErr: true, wantRow: 1, wantCached: true, wantValue: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDB(map[string]int{"a": 1})
			c, l1, l2 := twoLevels(t, d, func(o *Options[string, int]) { o.InvalidateOnWrite = tt.invalidate })
			_, err := c.Get(ctx, "a")
			require.NoError(t, err)
			d.failing = tt.failing
			err = c.Set(ctx, "a", 2)
			if tt.wantErr {
				require.ErrorIs(t, err, tt.failing)
			} else {
				require.NoError(t, err)
			}
			d.failing = nil
			assert.Equal(t, tt.wantRow, d.rows["a"])
			for _, l := range []*Memory[string, int]{l1, l2} {
				v, ok, err := l.Get(ctx, "a")
				require.NoError(t, err)
				assert.Equal(t, tt.wantCached, ok)
				assert.Equal(t, tt.wantValue, v)
			}
			v, err := c.Get(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, tt.wantRow, v)
		})
	}
}

func TestDeleteAndInvalidate(t *testing.T) {
	ctx := context.Background()
	d := newDB(map[string]int{"a": 1, "b": 2})
	c, l1, l2 := twoLevels(t, d, nil)
	_, err := c.GetMany(ctx, []string{"a", "b"})
	require.NoError(t, err)

	require.NoError(t, c.Invalidate(ctx, "a"))
	assert.Contains(t, d.rows, "a", "Invalidate leaves the store of record alone")
	require.NoError(t, c.Delete(ctx, "b"))
	assert.NotContains(t, d.rows, "b")
	for _, l := range []*Memory[string, int]{l1, l2} {
		res, err := l.GetMany(ctx, []string{"a", "b"})
		require.NoError(t, err)
		assert.Equal(t, []Result[int]{{}, {}}, res)
	}
	_, err = c.Get(ctx, "b")
	assert.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, c.Set(ctx, "c", 3))
	d.failing = errors.New("db down")
	assert.Error(t, c.Delete(ctx, "c"))
	d.failing = nil
	v, err := c.Get(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, 3, v, "a failed Delete leaves the levels untouched")
}

func TestSetWithoutWriterOnlyTouchesLevels(t *testing.T) {
	ctx := context.Background()
	d := newDB(map[string]int{})
	c, _, _ := twoLevels(t, d, func(o *Options[string, int]) { o.Writer = nil })
	require.NoError(t, c.Set(ctx, "a", 5))
	assert.Empty(t, d.rows)
	v, err := c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 5, v)
	assert.Zero(t, d.loads.Load())
}

// A load that read the old row before a write must not put it back into the levels after the
// write: the classic cache-aside race.
func TestWriteDuringLoadWins(t *testing.T) {
	ctx := context.Background()
	d := newDB(map[string]int{"a": 1})
	gate := make(chan struct{})
	read := make(chan struct{})
	slow := LoaderFunc[string, int](func(ctx context.Context, key string) (int, error) {
		v, err := d.Load(ctx, key) // reads the old row
		close(read)
		<-gate // then stalls while the write happens
		return v, err
	})
	c, _, _ := twoLevels(t, d, func(o *Options[string, int]) { o.Loader = slow })
	got := make(chan int, 1)
	go func() { v, _ := c.Get(ctx, "a"); got <- v }()
	<-read
	require.NoError(t, c.Set(ctx, "a", 2), "a write does not wait for a stalled load")
	close(gate)
	assert.Equal(t, 1, <-got, "the reader that started before the write gets the old value")
	v, err := c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 2, v, "but the levels keep the written one")
}

// recordingWriter stands for a write-behind queue: Write returns at once.
type recordingWriter struct{ queued []Write[string, int] }

func (w *recordingWriter) Write(_ context.Context, k string, v int) error {
	w.queued = append(w.queued, Write[string, int]{Key: k, Value: v})
	return nil
}

func (w *recordingWriter) Delete(_ context.Context, k string) error {
	w.queued = append(w.queued, Write[string, int]{Key: k, Delete: true})
	return nil
}

func TestAnyWriterPlugsIn(t *testing.T) {
	ctx := context.Background()
	w := &recordingWriter{}
	c, _, _ := twoLevels(t, newDB(map[string]int{}), func(o *Options[string, int]) { o.Writer = w })
	require.NoError(t, c.Set(ctx, "a", 1))
	require.NoError(t, c.Delete(ctx, "b"))
	assert.Equal(t, []Write[string, int]{{Key: "a", Value: 1}, {Key: "b", Delete: true}}, w.queued)
	v, err := c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, v, "the levels hold a queued write at once")
}
