package redisstream_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cutProxy forwards TCP connections to a Redis server. While it has cuts left, it closes the
// connection instead of passing on the reply to an XADD: the entry is written, the client sees
// EOF — the lost reply that makes a publish's outcome unknown.
type cutProxy struct {
	ln    net.Listener
	to    string
	cuts  atomic.Int32
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, to: to}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *cutProxy) Addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(c, s)
	}
}

func (p *cutProxy) pipe(c, s net.Conn) {
	var xadd atomic.Bool
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if bytes.Contains(bytes.ToUpper(buf[:n]), []byte("XADD")) {
					xadd.Store(true)
				}
				if _, werr := s.Write(buf[:n]); werr != nil {
					err = werr
				}
			}
			if err != nil {
				s.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if xadd.Swap(false) && p.cuts.Add(-1) >= 0 {
				c.Close()
				s.Close()
				return
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			c.Close()
			return
		}
	}
}

// entryIDs returns the event ID of every entry of stream.
func entryIDs(t *testing.T, c redis.UniversalClient, stream string) []string {
	t.Helper()
	msgs, err := c.XRange(context.Background(), stream, "-", "+").Result()
	require.NoError(t, err)
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// TestPublishOutcome: every way a Publish can fail, whether it says the outcome is unknown, and
// what Redis holds afterwards. The lost reply is the case of the issue: an error, and the entry
// written all the same.
func TestPublishOutcome(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, m *miniredis.Miniredis, p *cutProxy, c *redis.Client) context.Context
		ambiguous bool
		written   int
	}{
		{"reply lost after the write", func(t *testing.T, m *miniredis.Miniredis, p *cutProxy, c *redis.Client) context.Context {
			p.cuts.Store(1)
			return context.Background()
		}, true, 1},
		{"server down", func(t *testing.T, m *miniredis.Miniredis, p *cutProxy, c *redis.Client) context.Context {
			m.Close()
			return context.Background()
		}, true, -1},
		{"refused by Redis", func(t *testing.T, m *miniredis.Miniredis, p *cutProxy, c *redis.Client) context.Context {
			m.SetError("OOM command not allowed when used memory > 'maxmemory'")
			return context.Background()
		}, false, 0},
		{"refusal go-redis retries", func(t *testing.T, m *miniredis.Miniredis, p *cutProxy, c *redis.Client) context.Context {
			m.SetError("LOADING Redis is loading the dataset in memory")
			return context.Background()
		}, true, 0},
		{"ctx over before sending", func(t *testing.T, m *miniredis.Miniredis, p *cutProxy, c *redis.Client) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, false, 0},
		{"client closed", func(t *testing.T, m *miniredis.Miniredis, p *cutProxy, c *redis.Client) context.Context {
			c.Close()
			return context.Background()
		}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := miniredis.RunT(t)
			p := newCutProxy(t, m.Addr())
			c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, DialTimeout: time.Second})
			t.Cleanup(func() { c.Close() })
			require.NoError(t, c.Ping(context.Background()).Err())
			topic := newOrders(t, newTransport(t, c, redisstream.Options{}))
			ctx := tt.setup(t, m, p, c)

			err := topic.Publish(redisstream.WithEventID(ctx, "order-7"), orderProcessed{Seq: 7})
			var pe *redisstream.PublishError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "order-7", pe.ID)
			assert.Equal(t, "orders", pe.Stream)
			assert.Equal(t, tt.ambiguous, errors.Is(err, redisstream.ErrMaybePublished), "%v", err)
			if tt.written >= 0 {
				m.SetError("")
				check := redis.NewClient(&redis.Options{Addr: m.Addr()})
				defer check.Close()
				assert.Len(t, entryIDs(t, check, "orders"), tt.written)
			}
		})
	}
}

// TestRetriedPublishDeduplicatedByID: go-redis retries a command whose reply was lost (its
// default MaxRetries), so a Publish that returned nil wrote the event twice; a publisher that
// retries an ErrMaybePublished publish does the same. Every copy carries the one event ID, and a
// subscriber that records EventID handles the event once.
func TestRetriedPublishDeduplicatedByID(t *testing.T) {
	m := miniredis.RunT(t)
	p := newCutProxy(t, m.Addr())
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 2 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	tr := newTransport(t, c, redisstream.Options{Block: 10 * time.Millisecond})
	topic := newOrders(t, tr)

	var mu sync.Mutex
	seen := map[string]bool{}
	var handled, duplicates atomic.Int32
	done := make(chan struct{}, 8)
	_, err := topic.Subscribe(context.Background(), "billing", "b1", func(ctx context.Context, o orderProcessed) error {
		mu.Lock()
		dup := seen[redisstream.EventID(ctx)]
		seen[redisstream.EventID(ctx)] = true
		mu.Unlock()
		if dup {
			duplicates.Add(1)
		} else {
			handled.Add(1)
		}
		done <- struct{}{}
		return nil
	}, redisstream.SubscribeOptions[orderProcessed]{})
	require.NoError(t, err)

	p.cuts.Store(1) // go-redis retries the lost reply itself: Publish succeeds, twice written
	require.NoError(t, topic.Publish(context.Background(), orderProcessed{Seq: 1}))

	p.cuts.Store(4) // every attempt loses its reply: the caller sees an unknown outcome...
	err = topic.Publish(context.Background(), orderProcessed{Seq: 2})
	require.ErrorIs(t, err, redisstream.ErrMaybePublished)
	var pe *redisstream.PublishError
	require.ErrorAs(t, err, &pe)
	// ...and retries with the same ID.
	require.NoError(t, topic.Publish(redisstream.WithEventID(context.Background(), pe.ID), orderProcessed{Seq: 2}))

	ids := entryIDs(t, redis.NewClient(&redis.Options{Addr: m.Addr()}), "orders")
	require.Len(t, ids, 2+4+1, "two copies of event 1, four plus the retry of event 2")
	for range len(ids) {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("handled %d, duplicates %d of %d entries", handled.Load(), duplicates.Load(), len(ids))
		}
	}
	assert.Equal(t, int32(2), handled.Load(), "each event handled once")
	assert.Equal(t, int32(len(ids)-2), duplicates.Load())
	assert.Len(t, seen, 2)
	assert.Equal(t, pe.ID, ids[len(ids)-1])
}

func TestEventIDs(t *testing.T) {
	a, b := redisstream.NewEventID(), redisstream.NewEventID()
	assert.Len(t, a, 32)
	assert.NotEqual(t, a, b)
	assert.Empty(t, redisstream.EventID(context.Background()))
	assert.Equal(t, "x", redisstream.EventID(redisstream.WithEventID(context.Background(), "x")))

	// An entry without an ID field (written before events carried one) is known by its entry ID.
	c, _ := newClient(t)
	topic := newOrders(t, newTransport(t, c, redisstream.Options{Block: 10 * time.Millisecond}))
	got := make(chan string, 2)
	_, err := topic.Subscribe(context.Background(), "g", "c", func(ctx context.Context, o orderProcessed) error {
		got <- redisstream.EventID(ctx)
		return nil
	}, redisstream.SubscribeOptions[orderProcessed]{})
	require.NoError(t, err)
	entry, err := c.XAdd(context.Background(), &redis.XAddArgs{Stream: "orders", Values: []any{"d", `{"seq":1}`}}).Result()
	require.NoError(t, err)
	require.NoError(t, topic.Publish(redisstream.WithEventID(context.Background(), "order-2"), orderProcessed{Seq: 2}))
	assert.Equal(t, entry, <-got)
	assert.Equal(t, "order-2", <-got)
}
