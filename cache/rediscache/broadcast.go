package rediscache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
)

// DefaultHealthInterval is BroadcastOptions.HealthInterval when it is 0.
const DefaultHealthInterval = time.Second

// PubSub is how a Broadcast carries its messages: which Redis pub/sub commands it uses.
type PubSub int

const (
	// PubSubPlain publishes with PUBLISH and listens with SUBSCRIBE: any Redis. On a Redis Cluster a
	// PUBLISH is passed over the cluster bus to every node, whichever node a subscriber is on.
	PubSubPlain PubSub = iota
	// PubSubSharded publishes with SPUBLISH and listens with SSUBSCRIBE (sharded pub/sub, Redis 7
	// and later, a single server included). On a cluster the channel is a key: its messages go only
	// to the master that serves the channel's slot and to that master's replicas, not to every
	// node, so the broadcast's traffic does not grow with the cluster. When the slot moves (a
	// failover, a resharding), Redis ends the subscription (SUNSUBSCRIBE) and Listen returns
	// cache.ErrBroadcastLost: the Cache drops its memory levels and listens again, on the new
	// master. With a *redis.ClusterClient, Listen subscribes on the node that serves the slot in
	// the client's slot map and, once subscribed, checks that the node is a master (ROLE): a map
	// that lags a failover names the old master, a replica now, where Redis accepts the
	// subscription but delivers late, or not at all, and never says the slot moved.
	PubSubSharded
)

// String names the mode: "plain" or "sharded".
func (p PubSub) String() string {
	switch p {
	case PubSubPlain:
		return "plain"
	case PubSubSharded:
		return "sharded"
	}
	return fmt.Sprintf("PubSub(%d)", int(p))
}

// BroadcastOptions configures a Broadcast.
type BroadcastOptions[K comparable] struct {
	// Client is the connection to Redis. Required. The broadcast does not close it.
	Client redis.UniversalClient
	// Channel is the pub/sub channel shared by the instances. Required.
	Channel string
	// KeyCodec turns keys into bytes and back. nil means the built-in binary encoding, which
	// round-trips keys made of strings (byte for byte, valid UTF-8 or not), booleans and numbers,
	// and arrays and structs (exported fields) of them; other key types need a KeyCodec.
	KeyCodec cache.Codec[K]
	// HealthInterval is how long the listener waits in silence before it pings the channel's
	// connection; a ping unanswered for another HealthInterval ends Listen with ErrBroadcastLost.
	// It bounds how long a dead subscription goes unnoticed (two intervals). 0 means
	// DefaultHealthInterval.
	HealthInterval time.Duration
	// Timeout bounds a Publish whose ctx has no earlier deadline. 0 means DefaultTimeout.
	Timeout time.Duration
	// PubSub chooses the commands: PubSubPlain (the zero value) or PubSubSharded, which a Redis
	// Cluster should use. It is not chosen from the client's type on purpose: every instance on
	// Channel must use the same commands, since a message sent with PUBLISH never reaches a
	// SSUBSCRIBE listener and one sent with SPUBLISH never reaches a SUBSCRIBE listener; switching
	// a running deployment over takes a new Channel (or a moment when no instance writes).
	PubSub PubSub
}

// Validate reports every problem of o.
func (o BroadcastOptions[K]) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("rediscache: broadcast: Client is nil"))
	}
	if o.Channel == "" {
		errs = append(errs, errors.New("rediscache: broadcast: Channel is empty"))
	}
	if o.HealthInterval < 0 {
		errs = append(errs, fmt.Errorf("rediscache: broadcast: HealthInterval %v is negative", o.HealthInterval))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("rediscache: broadcast: Timeout %v is negative", o.Timeout))
	}
	if o.PubSub != PubSubPlain && o.PubSub != PubSubSharded {
		errs = append(errs, fmt.Errorf("rediscache: broadcast: PubSub %v is unknown", o.PubSub))
	}
	if o.KeyCodec == nil {
		if _, err := defaultKeyCodec[K](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Broadcast is a Broadcaster over a Redis pub/sub channel. Each instance of the application
// needs its own Broadcast (it tells its own messages apart by a random identity). Messages
// are binary (a version, the sender's identity, length-prefixed keys), so every key round-trips
// exactly.
type Broadcast[K comparable] struct {
	client   redis.UniversalClient
	channel  string
	id       string
	keys     cache.Codec[K]
	interval time.Duration
	timeout  time.Duration
	sharded  bool
}

var _ cache.Broadcaster[string] = (*Broadcast[string])(nil)

// NewBroadcast returns a Broadcaster configured by opts.
func NewBroadcast[K comparable](opts BroadcastOptions[K]) (*Broadcast[K], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	rb := &Broadcast[K]{client: opts.Client, channel: opts.Channel, id: hex.EncodeToString(b[:]),
		keys: opts.KeyCodec, interval: opts.HealthInterval, timeout: opts.Timeout,
		sharded: opts.PubSub == PubSubSharded}
	if rb.keys == nil {
		rb.keys, _ = defaultKeyCodec[K]()
	}
	if rb.interval == 0 {
		rb.interval = DefaultHealthInterval
	}
	if rb.timeout == 0 {
		rb.timeout = DefaultTimeout
	}
	return rb, nil
}

// Publish sends keys to the other instances.
func (b *Broadcast[K]) Publish(ctx context.Context, keys []K) error {
	msg, err := encodeMessage(b.id, keys, b.keys)
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > b.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	if b.sharded {
		return b.client.SPublish(ctx, b.channel, msg).Err()
	}
	return b.client.Publish(ctx, b.channel, msg).Err()
}

// Listen subscribes to the channel and delivers the other instances' keys to drop until ctx ends.
// It calls dropAll on every subscription confirmation: messages published before it were not
// delivered, whether before the first subscription (values the instance cached meanwhile may
// already be stale) or while go-redis reconnected. It returns an error wrapping ErrBroadcastLost
// when the connection fails, a ping goes unanswered for HealthInterval, or Redis ends the
// subscription (as it does to a sharded one whose slot moves), and calls dropAll for a message it
// cannot read.
func (b *Broadcast[K]) Listen(ctx context.Context, drop func(keys []K), dropAll func()) error {
	var ps *redis.PubSub
	// node is the cluster node a sharded subscription is on, checked to be a master once
	// subscribed (see shardNode).
	var node *redis.Client
	switch {
	case !b.sharded:
		ps = b.client.Subscribe(ctx, b.channel)
	default:
		var err error
		if node, err = b.shardNode(ctx); err != nil {
			return fmt.Errorf("%w: %w", cache.ErrBroadcastLost, err)
		}
		if node != nil {
			ps = node.SSubscribe(ctx, b.channel)
		} else {
			ps = b.client.SSubscribe(ctx, b.channel)
		}
	}
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
					return fmt.Errorf("%w: no answer to a ping within %v", cache.ErrBroadcastLost, b.interval)
				}
				pinged = true
				if err := ps.Ping(ctx); err != nil {
					return fmt.Errorf("%w: ping: %w", cache.ErrBroadcastLost, err)
				}
				continue
			}
			return fmt.Errorf("%w: receive: %w", cache.ErrBroadcastLost, err)
		}
		pinged = false
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "unsubscribe" || m.Kind == "sunsubscribe" {
				// Redis ended the subscription: with sharded pub/sub, the channel's slot moved
				// to another node (a failover). Nothing more would arrive here.
				return fmt.Errorf("%w: Redis ended the subscription (%s)", cache.ErrBroadcastLost, m.Kind)
			}
			if node != nil {
				if err := b.checkMaster(ctx, node); err != nil {
					return err
				}
			}
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

// shardNode returns, on a Redis Cluster, the node that serves the channel's slot in the client's
// slot map, for the sharded subscription to go there; nil on another client.
func (b *Broadcast[K]) shardNode(ctx context.Context) (*redis.Client, error) {
	c, ok := b.client.(*redis.ClusterClient)
	if !ok {
		return nil, nil
	}
	node, err := c.MasterForKey(ctx, b.channel)
	if err != nil {
		return nil, fmt.Errorf("rediscache: broadcast: the node of channel %q: %w", b.channel, err)
	}
	return node, nil
}

// checkMaster makes sure that node, where the sharded subscription was just confirmed, is a
// master. Redis accepts SSUBSCRIBE on a replica, whose subscribers receive the messages through
// replication: late while the replica resynchronises and not at all after a full resynchronisation,
// and without the SUNSUBSCRIBE that tells a master's subscribers their slot moved. A client whose
// slot map lags a failover subscribes there; instead the listener reports the broadcast lost (so
// the Cache listens again) and has the map reloaded. Once a master has confirmed the
// subscription, a failover that demotes it sends SUNSUBSCRIBE, which Listen heeds.
func (b *Broadcast[K]) checkMaster(ctx context.Context, node *redis.Client) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	role, err := node.Do(ctx, "role").Slice()
	if err != nil {
		return fmt.Errorf("%w: role of %s: %w", cache.ErrBroadcastLost, node.Options().Addr, err)
	}
	if len(role) == 0 || role[0] != "master" {
		if c, ok := b.client.(*redis.ClusterClient); ok {
			c.ReloadState(ctx)
		}
		return fmt.Errorf("%w: subscribed on %s, a replica now: the slot map was stale", cache.ErrBroadcastLost, node.Options().Addr)
	}
	return nil
}
