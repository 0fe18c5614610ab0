package writebehind

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestJournalCrashRecoveryRedis crashes a write-behind instance in the middle of a stream of
// writes on real Redis (its goroutines stop at once: no drain, no acknowledgement) and checks
// that a second instance applies every write the first one acknowledged.
func TestJournalCrashRecoveryRedis(t *testing.T) {
	testenv.Require(t)
	client := testenv.StartRedis(t).Client(t)
	ctx := context.Background()
	const claimIdle = 500 * time.Millisecond
	journal := func(consumer string) *Journal[string, int] {
		j, err := NewJournal(ctx, JournalOptions[string, int]{Client: client, Consumer: consumer, ClaimIdle: claimIdle})
		require.NoError(t, err)
		return j
	}
	db := newWBStore() // the store of record both instances write to

	crashing, err := New(Options[string, int]{
		Store: wbBatchStore{db}, Delay: 200 * time.Millisecond, BatchSize: 500, Journal: journal("crashing"),
	})
	require.NoError(t, err)

	// Each writer owns its keys and writes increasing values, so for every key the store must end
	// with the last acknowledged value, or with a later one whose acknowledgement the crash cut off.
	const writers, keysPerWriter = 8, 40
	acked := make([]map[string]int, writers)
	tried := make([]map[string]int, writers)
	var total atomic.Int64
	crashed := make(chan struct{})
	var wg sync.WaitGroup
	for g := range writers {
		acked[g], tried[g] = map[string]int{}, map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				k := fmt.Sprintf("w%d-k%d", g, i%keysPerWriter)
				tried[g][k] = i
				if crashing.Write(ctx, k, i) != nil {
					return
				}
				acked[g][k] = i
				if total.Add(1) == 3000 {
					close(crashed)
				}
			}
		}()
	}
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-crashed:
	case <-stopped:
		t.Fatalf("the writers stopped after %d writes, before the crash", total.Load())
	}
	crashing.halt() // the crash
	<-stopped
	p, err := client.XPending(ctx, "girder:writebehind", "girder").Result()
	require.NoError(t, err)
	t.Logf("crashed after %d acknowledged writes, %d entries pending in the journal", total.Load(), p.Count)

	rescuer := newTestWB(t, Options[string, int]{Store: wbBatchStore{db}, Delay: time.Millisecond, Journal: journal("rescuer")})
	check := func() (missing int) {
		data, _ := db.snapshot()
		for g := range writers {
			for k, v := range acked[g] {
				if data[k] < v || data[k] > tried[g][k] {
					missing++
				}
			}
		}
		return missing
	}
	require.Eventually(t, func() bool { return check() == 0 }, 30*time.Second, 50*time.Millisecond,
		"the rescuer claims the crashed instance's entries after ClaimIdle and applies them")
	require.NoError(t, rescuer.Close(ctx))
	p, err = client.XPending(ctx, "girder:writebehind", "girder").Result()
	require.NoError(t, err)
	assert.Zero(t, p.Count, "every entry acknowledged")
	assert.False(t, db.overlap)
}
