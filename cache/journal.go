package cache

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Journal makes a WriteBehind durable: every accepted write is appended to a Redis stream before
// the caller is answered, and acknowledged there only after the store of record took it.
//
// How it works: all instances share one stream and one consumer group; each instance is a
// consumer. A write is appended and delivered to its own instance's consumer in one MULTI/EXEC,
// so from the moment it is durable it sits in that instance's pending entries list. The instance
// applies it from memory and acknowledges it. Entries of an instance that stops without
// acknowledging them (a crash, or a Close whose deadline expired) become idle; after ClaimIdle
// another instance claims them with XAUTOCLAIM and applies them. A recovered write is skipped
// when the stream holds a newer write of the same key, so a recovery does not roll back a key
// written again after the crash (a write by another instance racing the recovery itself is not
// ordered against it, as two instances' writes never are). An
// instance restarted with the same Consumer name takes its own pending entries back at once.
//
// Delivery is at least once: a write may be applied twice (after a crash between the store
// write and the acknowledgement), so the store's writes should be idempotent, as upserts and
// deletes are. Acknowledged entries are trimmed from the stream.
//
// Instances that are gone stay listed in the group (XINFO CONSUMERS) with nothing pending; remove
// them with XGROUP DELCONSUMER when convenient (never one with pending entries: they would be lost).
// Recovered writes are queued even beyond the WriteBehind's QueueSize, at most 5 000 per round.
// A Journal is used by one WriteBehind at a time; create it with NewJournal.
type Journal[K comparable, V any] struct {
	client    redis.UniversalClient
	stream    string
	group     string
	consumer  string
	keys      Codec[K]
	values    Codec[V]
	claimIdle time.Duration
	inUse     atomic.Bool
}

// JournalOptions configures a Journal. Only Client is required.
type JournalOptions[K comparable, V any] struct {
	// Client is the Redis client (a *redis.Client, or a cluster client: the stream is one key).
	Client redis.UniversalClient
	// Stream is the stream's key. "" means "girder:writebehind".
	Stream string
	// Group is the consumer group shared by every instance. "" means "girder".
	Group string
	// Consumer names this instance in the group. A stable name (the pod's name) lets a restarted
	// instance take its own pending writes back at once. "" means host name, process ID and a
	// random suffix.
	Consumer string
	// KeyCodec and ValueCodec encode keys and values; nil means JSON.
	KeyCodec   Codec[K]
	ValueCodec Codec[V]
	// ClaimIdle is how long a write must sit unacknowledged in another consumer's pending list
	// before this instance takes it over. It must exceed the longest pause of a live instance.
	// 0 means 30 s.
	ClaimIdle time.Duration
}

// Validate reports every problem with o, or nil.
func (o *JournalOptions[K, V]) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("Client is nil"))
	}
	if o.ClaimIdle < 0 {
		errs = append(errs, fmt.Errorf("ClaimIdle %v is negative", o.ClaimIdle))
	}
	if o.ClaimIdle > 0 && o.ClaimIdle < 3*time.Millisecond {
		errs = append(errs, fmt.Errorf("ClaimIdle %v is below 3ms", o.ClaimIdle))
	}
	if len(errs) > 0 {
		return fmt.Errorf("cache: journal options: %w", errors.Join(errs...))
	}
	return nil
}

// NewJournal returns a Journal on opts.Stream, creating the stream and the consumer group when
// they do not exist.
func NewJournal[K comparable, V any](ctx context.Context, opts JournalOptions[K, V]) (*Journal[K, V], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	j := &Journal[K, V]{
		client:    opts.Client,
		stream:    cmp.Or(opts.Stream, "girder:writebehind"),
		group:     cmp.Or(opts.Group, "girder"),
		consumer:  opts.Consumer,
		keys:      opts.KeyCodec,
		values:    opts.ValueCodec,
		claimIdle: opts.ClaimIdle,
	}
	if j.consumer == "" {
		j.consumer = journalDefaultConsumer()
	}
	if j.keys == nil {
		j.keys = JSON[K]{}
	}
	if j.values == nil {
		j.values = JSON[V]{}
	}
	if j.claimIdle == 0 {
		j.claimIdle = 30 * time.Second
	}
	// Start at 0, not $: entries written before the group existed are applied, not skipped.
	err := j.client.XGroupCreateMkStream(ctx, j.stream, j.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil, fmt.Errorf("cache: journal: create group %s on %s: %w", j.group, j.stream, err)
	}
	return j, nil
}

// Consumer returns this instance's consumer name.
func (j *Journal[K, V]) Consumer() string { return j.consumer }

func journalDefaultConsumer() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Stream entry fields: the encoded key, the encoded value, and "1" for a deletion.
const (
	journalKey    = "k"
	journalValue  = "v"
	journalDelete = "d"
)

// journalEntry is one decoded stream entry.
type journalEntry[K comparable, V any] struct {
	id  string
	key string // encoded, to compare keys without decoding
	w   Write[K, V]
}

// encode turns w into stream fields.
func (j *Journal[K, V]) encode(w Write[K, V]) ([]any, error) {
	k, err := j.keys.Marshal(w.Key)
	if err != nil {
		return nil, fmt.Errorf("cache: journal: key: %w", err)
	}
	if w.Delete {
		return []any{journalKey, k, journalDelete, "1"}, nil
	}
	v, err := j.values.Marshal(w.Value)
	if err != nil {
		return nil, fmt.Errorf("cache: journal: value: %w", err)
	}
	return []any{journalKey, k, journalValue, v}, nil
}

// decode turns a stream entry back into a write.
func (j *Journal[K, V]) decode(m redis.XMessage) (journalEntry[K, V], error) {
	e := journalEntry[K, V]{id: m.ID}
	k, ok := m.Values[journalKey].(string)
	if !ok {
		return e, fmt.Errorf("cache: journal: entry %s has no key", m.ID)
	}
	e.key = k
	key, err := j.keys.Unmarshal([]byte(k))
	if err != nil {
		return e, fmt.Errorf("cache: journal: entry %s: key: %w", m.ID, err)
	}
	e.w.Key = key
	if d, _ := m.Values[journalDelete].(string); d == "1" {
		e.w.Delete = true
		return e, nil
	}
	v, ok := m.Values[journalValue].(string)
	if !ok {
		return e, fmt.Errorf("cache: journal: entry %s has no value", m.ID)
	}
	if e.w.Value, err = j.values.Unmarshal([]byte(v)); err != nil {
		return e, fmt.Errorf("cache: journal: entry %s: value: %w", m.ID, err)
	}
	return e, nil
}

// append appends the encoded writes and delivers them to this consumer in one MULTI/EXEC, so no
// appended write is ever outside a pending list. It returns the entries' IDs in order. Entries
// that were in the stream undelivered (written by something else than a WriteBehind) are
// delivered along and returned as adopted: this instance applies them too.
func (j *Journal[K, V]) append(ctx context.Context, fields [][]any) (ids []string, adopted []redis.XMessage, err error) {
	pipe := j.client.TxPipeline()
	adds := make([]*redis.StringCmd, len(fields))
	for i, f := range fields {
		adds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: j.stream, Values: f})
	}
	read := pipe.XReadGroup(ctx, j.readArgs(">", len(fields)))
	// An empty read is redis.Nil; what matters is that every XADD succeeded.
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("cache: journal: append: %w", err)
	}
	ids = make([]string, len(adds))
	mine := make(map[string]bool, len(adds))
	for i, c := range adds {
		if err := c.Err(); err != nil {
			return nil, nil, fmt.Errorf("cache: journal: append: %w", err)
		}
		ids[i] = c.Val()
		mine[ids[i]] = true
	}
	msgs := journalMessages(read.Val())
	for len(mine) > 0 {
		for _, m := range msgs {
			if mine[m.ID] {
				delete(mine, m.ID)
			} else {
				adopted = append(adopted, m)
			}
		}
		if len(mine) == 0 {
			break
		}
		// Older undelivered entries came first; read on until ours are delivered too.
		res, err := j.client.XReadGroup(ctx, j.readArgs(">", len(mine))).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return ids, adopted, fmt.Errorf("cache: journal: deliver: %w", err)
		}
		if msgs = journalMessages(res); len(msgs) == 0 {
			break // another consumer read them: they are durable and theirs to apply
		}
	}
	return ids, adopted, nil
}

func (j *Journal[K, V]) readArgs(from string, count int) *redis.XReadGroupArgs {
	return &redis.XReadGroupArgs{
		Group:    j.group,
		Consumer: j.consumer,
		Streams:  []string{j.stream, from},
		Count:    int64(count),
		Block:    -1,
	}
}

func journalMessages(res []redis.XStream) []redis.XMessage {
	if len(res) == 0 {
		return nil
	}
	return res[0].Messages
}

// ack acknowledges entries whose writes the store took (or DeadLetter received).
func (j *Journal[K, V]) ack(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := j.client.XAck(ctx, j.stream, j.group, ids...).Err(); err != nil {
		return fmt.Errorf("cache: journal: ack %d entries: %w", len(ids), err)
	}
	return nil
}

// journalIDLess orders stream IDs ("ms-seq") numerically.
func journalIDLess(a, b string) bool {
	am, as := journalSplitID(a)
	bm, bs := journalSplitID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

func journalSplitID(id string) (ms, seq uint64) {
	l, r, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(l, 10, 64)
	seq, _ = strconv.ParseUint(r, 10, 64)
	return ms, seq
}
