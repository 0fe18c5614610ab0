package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/girder-go/girder/internal/backoff"
	"github.com/redis/go-redis/v9"
)

// Broadcaster carries invalidations between the instances of an application, so that a write in
// one instance drops the copies the others keep in memory.
//
// Publish sends keys to every other instance. Listen delivers what the other instances publish
// (not this instance's own messages) to drop, and calls dropAll each time it is subscribed, since
// messages may have been lost before (before it was first subscribed, during a reconnection): the
// first call is what Cache.Subscribed waits for. Listen blocks until ctx ends or the connection
// fails, when it returns an error and the Cache calls it again after a backoff. Both must be safe
// for concurrent use.
type Broadcaster[K comparable] interface {
	Publish(ctx context.Context, keys []K) error
	Listen(ctx context.Context, drop func(keys []K), dropAll func()) error
}

// ErrBroadcastLost is wrapped by the errors of a Broadcaster's Listen when invalidations may
// have been missed: the connection failed, the health check went unanswered, or a message could
// not be read. The Cache then clears its Memory levels, stops filling them until it is subscribed
// again, and reports the error to Hooks.OnError (with the zero key) and its Logger.
var ErrBroadcastLost = errors.New("cache: broadcast: invalidations may have been lost")

// DefaultHealthInterval is RedisBroadcastOptions.HealthInterval when it is 0.
const DefaultHealthInterval = time.Second

// RedisBroadcastOptions configures a RedisBroadcast.
type RedisBroadcastOptions[K comparable] struct {
	// Client is the connection to Redis. Required. The broadcast does not close it.
	Client redis.UniversalClient
	// Channel is the pub/sub channel shared by the instances. Required.
	Channel string
	// KeyCodec turns keys into bytes and back. nil means the built-in binary encoding, which
	// round-trips keys made of strings (byte for byte, valid UTF-8 or not), booleans and numbers,
	// and arrays and structs (exported fields) of them; other key types need a KeyCodec.
	KeyCodec Codec[K]
	// HealthInterval is how long the listener waits in silence before it pings the channel's
	// connection; a ping unanswered for another HealthInterval ends Listen with ErrBroadcastLost.
	// It bounds how long a dead subscription goes unnoticed (two intervals). 0 means
	// DefaultHealthInterval.
	HealthInterval time.Duration
	// Timeout bounds a Publish whose ctx has no earlier deadline. 0 means DefaultRedisTimeout.
	Timeout time.Duration
}

// Validate reports every problem of o.
func (o RedisBroadcastOptions[K]) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("cache: broadcast: Client is nil"))
	}
	if o.Channel == "" {
		errs = append(errs, errors.New("cache: broadcast: Channel is empty"))
	}
	if o.HealthInterval < 0 {
		errs = append(errs, fmt.Errorf("cache: broadcast: HealthInterval %v is negative", o.HealthInterval))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("cache: broadcast: Timeout %v is negative", o.Timeout))
	}
	if o.KeyCodec == nil {
		if _, err := defaultKeyCodec[K](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RedisBroadcast is a Broadcaster over a Redis pub/sub channel. Each instance of the application
// needs its own RedisBroadcast (it tells its own messages apart by a random identity). Messages
// are binary (a version, the sender's identity, length-prefixed keys), so every key round-trips
// exactly.
type RedisBroadcast[K comparable] struct {
	client   redis.UniversalClient
	channel  string
	id       string
	keys     Codec[K]
	interval time.Duration
	timeout  time.Duration
}

var _ Broadcaster[string] = (*RedisBroadcast[string])(nil)

// NewRedisBroadcast returns a Broadcaster configured by opts.
func NewRedisBroadcast[K comparable](opts RedisBroadcastOptions[K]) (*RedisBroadcast[K], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	rb := &RedisBroadcast[K]{client: opts.Client, channel: opts.Channel, id: hex.EncodeToString(b[:]),
		keys: opts.KeyCodec, interval: opts.HealthInterval, timeout: opts.Timeout}
	if rb.keys == nil {
		rb.keys, _ = defaultKeyCodec[K]()
	}
	if rb.interval == 0 {
		rb.interval = DefaultHealthInterval
	}
	if rb.timeout == 0 {
		rb.timeout = DefaultRedisTimeout
	}
	return rb, nil
}

// Publish sends keys to the other instances.
func (b *RedisBroadcast[K]) Publish(ctx context.Context, keys []K) error {
	msg, err := encodeMessage(b.id, keys, b.keys)
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > b.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	return b.client.Publish(ctx, b.channel, msg).Err()
}

// Listen subscribes to the channel and delivers the other instances' keys to drop until ctx ends.
// It calls dropAll on every subscription confirmation: messages published before it were not
// delivered, whether before the first subscription (values the instance cached meanwhile may
// already be stale) or while go-redis reconnected. It returns an error wrapping ErrBroadcastLost
// when the connection fails or a ping goes unanswered for HealthInterval, and calls dropAll for a
// message it cannot read.
func (b *RedisBroadcast[K]) Listen(ctx context.Context, drop func(keys []K), dropAll func()) error {
	ps := b.client.Subscribe(ctx, b.channel)
	defer ps.Close()
	// go-redis blocks in a read that ignores ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	pinged := false
	for {
		m, err := ps.ReceiveTimeout(ctx, b.interval)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if pinged {
					return fmt.Errorf("%w: no answer to a ping within %v", ErrBroadcastLost, b.interval)
				}
				pinged = true
				if err := ps.Ping(ctx); err != nil {
					return fmt.Errorf("%w: ping: %w", ErrBroadcastLost, err)
				}
				continue
			}
			return fmt.Errorf("%w: receive: %w", ErrBroadcastLost, err)
		}
		pinged = false
		switch m := m.(type) {
		case *redis.Subscription:
			dropAll()
		case *redis.Message:
			from, keys, err := decodeMessage([]byte(m.Payload), b.keys)
			if err != nil {
				// A message this instance cannot read may hide a key it must drop.
				dropAll()
				continue
			}
			if from != b.id {
				drop(keys)
			}
		}
	}
}

// listenBackoff spaces the attempts to listen again after a failure.
var listenBackoff = backoff.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.5}

// listen runs the Broadcast's Listen until Close, and again after each failure. The Memory levels
// are cleared after a failure, since invalidations may have been missed.
func (c *Cache[K, V]) listen() {
	defer c.wg.Done()
	drop := func(keys []K) {
		for _, k := range keys {
			c.flight.markStale(k)
			for i := range c.levels {
				if m := c.levels[i].mem; m != nil {
					m.drop(k)
				}
			}
		}
		c.counters.invalidated.Add(uint64(len(keys)))
	}
	dropAll := func() {
		c.flight.markAllStale()
		for i := range c.levels {
			if m := c.levels[i].mem; m != nil {
				m.Clear()
			}
		}
	}
	heard := false
	subscribed := func() {
		dropAll()
		heard = true
		c.hearing.Store(true)
		c.subOnce.Do(func() { close(c.subscribed) })
	}
	for attempt := 0; ; attempt++ {
		err := c.broadcast.Listen(c.bg, drop, subscribed)
		c.hearing.Store(false)
		if c.bg.Err() != nil {
			return
		}
		dropAll()
		if heard {
			attempt, heard = 0, false
		}
		if !errors.Is(err, ErrBroadcastLost) {
			err = fmt.Errorf("%w: %w", ErrBroadcastLost, err)
		}
		if h := c.hooks.OnError; h != nil {
			var zero K
			h(c.bg, zero, err)
		}
		if c.log != nil {
			c.log.LogAttrs(c.bg, slog.LevelWarn, "cache: invalidation listener failed", slog.Any("err", err))
		}
		t := time.NewTimer(listenBackoff.Delay(attempt))
		select {
		case <-c.bg.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
