package cache

import (
	"bufio"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/maypok86/otter/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// traceDirs are searched for a trace in order: testdata (the small LIRS traces, committed), then
// $GIRDER_TRACES, then the shared traces beside the checkout (README.md there gives the published
// ratios).
func traceDirs() []string {
	dirs := []string{"testdata"}
	if d := os.Getenv("GIRDER_TRACES"); d != "" {
		dirs = append(dirs, d)
	}
	return append(dirs, filepath.Join("..", "..", "shared", "traces"))
}

// readTrace returns the keys of a trace: ARC traces are "start count _ _" lines naming the blocks
// start..start+count-1; LIRS traces are one key per line.
func readTrace(t *testing.T, name string) []uint64 {
	t.Helper()
	var f *os.File
	var err error
	for _, dir := range traceDirs() {
		if f, err = os.Open(filepath.Join(dir, name)); !os.IsNotExist(err) {
			break
		}
	}
	if os.IsNotExist(err) {
		// Only the LIRS traces ship with the repository; the ARC ones are external data.
		t.Skipf("trace %s not found in %v (set GIRDER_TRACES)", name, traceDirs())
	}
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	var keys []uint64
	sc := bufio.NewScanner(gz)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		start, err := strconv.ParseUint(fields[0], 10, 64)
		require.NoError(t, err)
		count := uint64(1)
		if strings.HasPrefix(name, "arc-") {
			count, err = strconv.ParseUint(fields[1], 10, 64)
			require.NoError(t, err)
		}
		for k := start; k < start+count; k++ {
			keys = append(keys, k)
		}
	}
	require.NoError(t, sc.Err())
	return keys
}

// TestHitRatioOnTraces replays the traces through a Memory level, one request at a time (read,
// and write on a miss), and reports the hit ratio beside the published W-TinyLFU figure and bare
// otter's ratio in the same run: the wrapper must not cost hits.
func TestHitRatioOnTraces(t *testing.T) {
	if testing.Short() {
		t.Skip("replays about a million requests")
	}
	tests := []struct {
		trace     string
		capacity  int
		published float64 // % from traces/README.md, otter v2
		heavy     bool    // 0.5–4 M requests: under the race detector only a prefix is replayed
		// excerpt: the file holds 6,015 of the trace's requests, so cold misses weigh more than in
		// the published run; only the comparison with bare otter holds, with a wider margin.
		excerpt bool
	}{
		{"arc-oltp.gz", 1000, 40.3, true, false},
		{"arc-p3.gz", 25000, 14.4, true, false},
		{"lirs-gli.gz", 1000, 50.3, false, true},
		{"lirs-loop.gz", 512, 49.6, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.trace, func(t *testing.T) {
			keys := readTrace(t, tt.trace)
			whole := true
			if tt.heavy && raceEnabled && len(keys) > racePrefix {
				keys, whole = keys[:racePrefix], false // the published figure is for the whole trace
			}
			// otter seeds its hashes per cache, so a short trace gives a spread of ratios: the
			// excerpt is replayed several times and the ratios averaged, and so is a prefix (a
			// single 50,000-request replay of lirs-loop once fell 2 points below bare otter).
			runs := 1
			switch {
			case tt.excerpt:
				runs = 9
			case !whole:
				runs = 3
			}
			var hits, bareHits int
			for range runs {
				h, bh := replayTrace(t, keys, tt.capacity)
				hits, bareHits = hits+h, bareHits+bh
			}
			total := len(keys) * runs
			ratio := 100 * float64(hits) / float64(total)
			bareRatio := 100 * float64(bareHits) / float64(total)
			t.Logf("%s @ %d: girder L1 %.1f %%, bare otter %.1f %%, published %.1f %% (%d requests)",
				tt.trace, tt.capacity, ratio, bareRatio, tt.published, len(keys))
			margin := map[bool]float64{false: 1.5, true: 4}[tt.excerpt]
			assert.InDelta(t, bareRatio, ratio, margin, "the L1 keeps otter's ratio")
			if !tt.excerpt && whole {
				assert.InDelta(t, tt.published, ratio, 1.5, "the published figure")
			}
		})
	}
}

// racePrefix is how many requests of a heavy trace are replayed under the race detector.
const racePrefix = 50_000

// replayTrace runs keys through a Memory store and a bare otter cache of capacity entries, each
// request a read and, on a miss, a write; it returns the hits of each.
func replayTrace(t *testing.T, keys []uint64, capacity int) (hits, bareHits int) {
	ctx := context.Background()
	inline := func(fn func()) { fn() }
	mem, err := NewMemory(MemoryOptions[uint64, struct{}]{MaxSize: capacity, executor: inline})
	require.NoError(t, err)
	defer mem.Close()
	bare := otter.Must(&otter.Options[uint64, struct{}]{MaximumSize: capacity, Executor: inline})
	defer bare.StopAllGoroutines()
	for _, k := range keys {
		if _, ok, _ := mem.Get(ctx, k); ok {
			hits++
		} else {
			require.NoError(t, mem.Set(ctx, k, struct{}{}, 0))
		}
		if _, ok := bare.GetIfPresent(k); ok {
			bareHits++
		} else {
			bare.Set(k, struct{}{})
		}
	}
	return hits, bareHits
}
