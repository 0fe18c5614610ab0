package redisstream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/girder-go/girder/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIntegrationRedisStoppedMidPublish stops a real Redis while a publisher is publishing, four
// times. Redis saves on shutdown (CONFIG SET save), so after the restart the stream shows what
// was written. The publish in flight when Redis stopped fails; whether its entry was written is
// down to timing (the issue saw it written in 2 of 4 runs), so every such failure must say the
// outcome is unknown (ErrMaybePublished), and every event whose Publish returned nil is there.
func TestIntegrationRedisStoppedMidPublish(t *testing.T) {
	r := testenv.StartRedis(t)
	const runs = 4
	ambiguous, written := 0, 0
	for run := range runs {
		c := r.Client(t)
		ctx := context.Background()
		require.NoError(t, c.FlushDB(ctx).Err())
		require.NoError(t, c.ConfigSet(ctx, "save", "3600 1").Err())
		topic := newOrders(t, newTransport(t, c, redisstream.Options{}))

		var ok []string
		var failed *redisstream.PublishError
		var confirmed atomic.Int32
		stop := make(chan struct{})
		go func() {
			defer close(stop)
			for confirmed.Load() < 200 {
				time.Sleep(time.Millisecond)
			}
			r.Stop(t)
		}()
		for i := 0; ; i++ {
			id := fmt.Sprintf("run%d-%d", run, i)
			pctx, cancel := context.WithTimeout(redisstream.WithEventID(ctx, id), 10*time.Second)
			err := topic.Publish(pctx, orderProcessed{Seq: i})
			cancel()
			if err != nil {
				require.ErrorAs(t, err, &failed, "run %d", run)
				break
			}
			ok = append(ok, id)
			confirmed.Add(1)
		}
		<-stop
		r.Start(t)

		ids := entryIDs(t, r.Client(t), "orders")
		maybe := errors.Is(failed, redisstream.ErrMaybePublished)
		was := slices.Contains(ids, failed.ID)
		t.Logf("run %d: %d published, then %v (ambiguous %v, written %v)", run, len(ok), failed.Err, maybe, was)
		if maybe {
			ambiguous++
		}
		if was {
			written++
		}
		assert.True(t, maybe, "run %d: a publish cut short by Redis stopping has an unknown outcome: %v", run, failed)
		for _, id := range ok {
			assert.Contains(t, ids, id, "run %d: a confirmed publish is in the stream", run)
		}
	}
	t.Logf("Redis stopped mid-publish: %d of %d failed publishes reported ambiguous; %d of them actually written", ambiguous, runs, written)
}
