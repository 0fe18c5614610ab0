package writebehind

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
)

// Journal makes a Queue durable: every accepted write is appended to a Redis stream before
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
// deletes are. Entries that every consumer group has delivered and acknowledged are trimmed from
// the stream; undelivered and pending entries never are.
//
// Each append is one script (one round trip, plus one for WAIT with Replicas) that writes only
// when the consumer group exists; when the stream or the group is gone (Redis restarted without
// persistence, FLUSHALL, a deleted key, a failover) the journal creates them again and appends
// anew. The package doc lists the guarantees (J1 to J9) and what they need from Redis.
//
// Instances that are gone stay listed in the group (XINFO CONSUMERS) with nothing pending; remove
// them with XGROUP DELCONSUMER when convenient (never one with pending entries: they would be lost).
// Recovered writes are queued even beyond the Queue's QueueSize, at most 5 000 per round.
// A Journal is used by one Queue at a time; create it with NewJournal.
type Journal[K comparable, V any] struct {
	client    redis.UniversalClient
	stream    string
	group     string
	consumer  string
	keys      cache.Codec[K]
	values    cache.Codec[V]
	claimIdle time.Duration
	timeout   time.Duration
	replicas  int
	replWait  time.Duration
	retries   bool // the client may resend a command whose reply it did not get
	inUse     atomic.Bool
}

// ErrJournalAmbiguous is wrapped by a Write error whose append may or may not have reached Redis:
// the request was sent (or, with a client that retries, may have been sent by an earlier attempt)
// and no reply came, as when the connection breaks or times out. The write may still be applied,
// once or more; the caller cannot tell. Every other append error means the write left nothing in
// the journal and will never be applied.
var ErrJournalAmbiguous = errors.New("writebehind: journal: append outcome unknown, the write may or may not be applied")

// ErrJournalNotReplicated is matched (errors.Is) by a *JournalReplicaError.
var ErrJournalNotReplicated = errors.New("writebehind: journal: write not confirmed on enough replicas")

// JournalReplicaError is returned by a Write when the journal has Replicas set and fewer replicas
// than that confirmed the append within ReplicaTimeout. The write was written on the primary but
// not confirmed on Want replicas: it is queued and will be applied like any other, unless the
// primary fails over to a replica that did not receive it before it is applied.
type JournalReplicaError struct {
	Want int // replicas asked for (JournalOptions.Replicas)
	Got  int // replicas that confirmed
}

func (e *JournalReplicaError) Error() string {
	return fmt.Sprintf("writebehind: journal: written on the primary but confirmed on %d of %d replicas", e.Got, e.Want)
}

// Is makes errors.Is(err, ErrJournalNotReplicated) true.
func (e *JournalReplicaError) Is(target error) bool { return target == ErrJournalNotReplicated }

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
	KeyCodec   cache.Codec[K]
	ValueCodec cache.Codec[V]
	// ClaimIdle is how long a write must sit unacknowledged in another consumer's pending list
	// before this instance takes it over. It must exceed the longest pause of a live instance.
	// 0 means 30 s.
	ClaimIdle time.Duration
	// Timeout bounds every round trip of the journal to Redis, and so how long a Write waits for
	// its append during an outage (a Write also returns when its ctx ends). 0 means 5 s.
	Timeout time.Duration
	// Replicas, when positive, makes every append wait (WAIT) until that many replicas confirm it,
	// at most ReplicaTimeout; fewer confirmations make Write return a *JournalReplicaError. Set it
	// when Redis fails over to replicas: a write confirmed by no replica is lost by a failover that
	// happens before it is applied. 0 means no waiting.
	Replicas int
	// ReplicaTimeout bounds the WAIT; it must be below Timeout. 0 means 1 s (when Replicas > 0).
	ReplicaTimeout time.Duration
}

// Validate reports every problem with o, or nil.
func (o *JournalOptions[K, V]) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("writebehind: JournalOptions.Client is nil"))
	}
	if o.ClaimIdle < 0 {
		errs = append(errs, fmt.Errorf("writebehind: JournalOptions.ClaimIdle %v is negative", o.ClaimIdle))
	}
	if o.ClaimIdle > 0 && o.ClaimIdle < 3*time.Millisecond {
		errs = append(errs, fmt.Errorf("writebehind: JournalOptions.ClaimIdle %v is below 3ms", o.ClaimIdle))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("writebehind: JournalOptions.Timeout %v is negative", o.Timeout))
	}
	if o.Replicas < 0 {
		errs = append(errs, fmt.Errorf("writebehind: JournalOptions.Replicas %d is negative", o.Replicas))
	}
	if o.ReplicaTimeout < 0 {
		errs = append(errs, fmt.Errorf("writebehind: JournalOptions.ReplicaTimeout %v is negative", o.ReplicaTimeout))
	}
	if o.ReplicaTimeout > 0 && o.Replicas == 0 {
		errs = append(errs, fmt.Errorf("writebehind: JournalOptions.ReplicaTimeout %v is set but Replicas is 0", o.ReplicaTimeout))
	}
	if o.Replicas > 0 && o.ReplicaTimeout >= 0 && cmp.Or(o.ReplicaTimeout, time.Second) >= cmp.Or(o.Timeout, 5*time.Second) {
		errs = append(errs, fmt.Errorf("writebehind: JournalOptions.ReplicaTimeout %v is not below Timeout %v", cmp.Or(o.ReplicaTimeout, time.Second), cmp.Or(o.Timeout, 5*time.Second)))
	}
	return errors.Join(errs...)
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
		timeout:   cmp.Or(opts.Timeout, 5*time.Second),
		replicas:  opts.Replicas,
		replWait:  cmp.Or(opts.ReplicaTimeout, time.Second),
		retries:   clientRetries(opts.Client),
	}
	if j.consumer == "" {
		j.consumer = journalDefaultConsumer()
	}
	if j.keys == nil {
		j.keys = cache.JSON[K]{}
	}
	if j.values == nil {
		j.values = cache.JSON[V]{}
	}
	if j.claimIdle == 0 {
		j.claimIdle = 30 * time.Second
	}
	// Start at 0, not $: entries written before the group existed are applied, not skipped.
	if err := j.createGroup(ctx, "0"); err != nil {
		return nil, err
	}
	return j, nil
}

// createGroup creates the stream and the consumer group when they do not exist.
func (j *Journal[K, V]) createGroup(ctx context.Context, from string) error {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	err := j.client.XGroupCreateMkStream(ctx, j.stream, j.group, from).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("writebehind: journal: create group %s on %s: %w", j.group, j.stream, err)
	}
	return nil
}

// clientRetries reports whether c may send a command again after a lost reply (go-redis
// MaxRetries); for clients it cannot inspect it assumes so.
func clientRetries(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().MaxRetries > 0
	case *redis.ClusterClient:
		return c.Options().MaxRetries > 0
	}
	return true
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
	w   cache.Write[K, V]
}

// encode turns w into stream fields.
func (j *Journal[K, V]) encode(w cache.Write[K, V]) ([]any, error) {
	k, err := j.keys.Marshal(w.Key)
	if err != nil {
		return nil, fmt.Errorf("writebehind: journal: key: %w", err)
	}
	if w.Delete {
		return []any{journalKey, k, journalDelete, "1"}, nil
	}
	v, err := j.values.Marshal(w.Value)
	if err != nil {
		return nil, fmt.Errorf("writebehind: journal: value: %w", err)
	}
	return []any{journalKey, k, journalValue, v}, nil
}

// decode turns a stream entry back into a write.
func (j *Journal[K, V]) decode(m redis.XMessage) (journalEntry[K, V], error) {
	e := journalEntry[K, V]{id: m.ID}
	k, ok := m.Values[journalKey].(string)
	if !ok {
		return e, fmt.Errorf("writebehind: journal: entry %s has no key", m.ID)
	}
	e.key = k
	key, err := j.keys.Unmarshal([]byte(k))
	if err != nil {
		return e, fmt.Errorf("writebehind: journal: entry %s: key: %w", m.ID, err)
	}
	e.w.Key = key
	if d, _ := m.Values[journalDelete].(string); d == "1" {
		e.w.Delete = true
		return e, nil
	}
	v, ok := m.Values[journalValue].(string)
	if !ok {
		return e, fmt.Errorf("writebehind: journal: entry %s has no value", m.ID)
	}
	if e.w.Value, err = j.values.Unmarshal([]byte(v)); err != nil {
		return e, fmt.Errorf("writebehind: journal: entry %s: value: %w", m.ID, err)
	}
	return e, nil
}

// journalAppendScript appends the entries and delivers them to this consumer, atomically, but only
// when the consumer group exists: without it (a lost stream, a destroyed group) it writes nothing
// and returns "NOGROUP", so that a refused append leaves nothing behind. Entries of the stream that
// were not delivered yet (written by something else than a Queue) are delivered along.
//
// KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, then per entry: its field count, its fields.
var journalAppendScript = redis.NewScript(`
local ok = redis.pcall('XGROUP', 'CREATECONSUMER', KEYS[1], ARGV[1], ARGV[2])
if type(ok) == 'table' and ok.err then
	if string.find(ok.err, 'NOGROUP', 1, true) or string.find(ok.err, 'no such key', 1, true)
		or string.find(ok.err, 'requires the key to exist', 1, true) then
		return 'NOGROUP'
	end
	return redis.error_reply(ok.err)
end
local ids = {}
local i = 3
while i <= #ARGV do
	local n = tonumber(ARGV[i])
	local args = {'XADD', KEYS[1], '*'}
	for f = 1, n do args[#args + 1] = ARGV[i + f] end
	ids[#ids + 1] = redis.call(unpack(args))
	i = i + n + 1
end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'STREAMS', KEYS[1], '>')
local msgs = {}
if read and read[1] then msgs = read[1][2] end
return {ids, msgs}
`)

// errJournalNoGroup is returned by appendOnce when the group is missing.
var errJournalNoGroup = errors.New("writebehind: journal: consumer group missing")

// append appends the encoded writes and delivers them to this consumer in one script, so no
// appended write is ever outside a pending list. It returns the entries' IDs in order. Entries
// that were in the stream undelivered are delivered along and returned as adopted: this instance
// applies them too. When the stream or the group is gone it creates them again (from $: entries
// left in a stream whose group was destroyed belonged to that group) and appends again.
//
// An error wraps ErrJournalAmbiguous when the append may have taken effect; any other error
// means it did not. A *JournalReplicaError comes with the IDs: the append took effect.
func (j *Journal[K, V]) append(ctx context.Context, fields [][]any) (ids []string, adopted []redis.XMessage, err error) {
	args := []any{j.group, j.consumer}
	for _, f := range fields {
		args = append(args, len(f))
		args = append(args, f...)
	}
	for attempt := 0; ; attempt++ {
		ids, adopted, err = j.appendOnce(ctx, args)
		var moved *journalMovedError
		if errors.As(err, &moved) {
			// Nothing was appended: follow the slot to its new master and append there.
			if attempt == 2 || !j.follow(ctx, moved.addr) {
				return nil, nil, fmt.Errorf("writebehind: journal: append: %w", moved.err)
			}
			continue
		}
		if !errors.Is(err, errJournalNoGroup) {
			return ids, adopted, err
		}
		if attempt == 2 {
			return nil, nil, fmt.Errorf("writebehind: journal: append: %w", err)
		}
		if err := j.createGroup(ctx, "$"); err != nil {
			return nil, nil, j.classify(err)
		}
	}
}

func (j *Journal[K, V]) appendOnce(ctx context.Context, args []any) ([]string, []redis.XMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	keys := []string{j.stream}
	var run *redis.Cmd
	var wait *redis.Cmd
	exec := func(useSHA bool) error {
		pipe := j.pipeline(ctx)
		if useSHA {
			run = journalAppendScript.EvalSha(ctx, pipe, keys, args...)
		} else {
			run = journalAppendScript.Eval(ctx, pipe, keys, args...)
		}
		if j.replicas > 0 {
			// On the same connection: WAIT counts the replicas that have this connection's writes.
			wait = pipe.Do(ctx, "WAIT", j.replicas, j.replWait.Milliseconds())
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := exec(true)
	if err != nil && redis.HasErrorPrefix(run.Err(), "NOSCRIPT") {
		err = exec(false)
	}
	if err := run.Err(); err != nil {
		if addr, ok := journalMoved(err); ok && j.replicas > 0 {
			return nil, nil, &journalMovedError{addr: addr, err: err}
		}
		return nil, nil, j.classify(err)
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		// The script ran; WAIT failed.
		err = fmt.Errorf("writebehind: journal: wait for replicas: %w: %w", ErrJournalAmbiguous, err)
	}
	res := run.Val()
	if s, ok := res.(string); ok && s == "NOGROUP" {
		return nil, nil, errJournalNoGroup
	}
	ids, msgs, perr := journalParseAppend(res)
	if perr != nil {
		return nil, nil, fmt.Errorf("writebehind: journal: append: %w: %w", ErrJournalAmbiguous, perr)
	}
	if err == nil && wait != nil {
		if got, _ := wait.Int(); got < j.replicas {
			err = &JournalReplicaError{Want: j.replicas, Got: got}
		}
	}
	return ids, msgs, err
}

// pipeline returns a pipeline on one connection of the node that holds the stream.
func (j *Journal[K, V]) pipeline(ctx context.Context) redis.Pipeliner {
	if c, ok := j.client.(*redis.ClusterClient); ok && j.replicas > 0 {
		if node, err := c.MasterForKey(ctx, j.stream); err == nil {
			return node.Pipeline()
		}
	}
	return j.client.Pipeline()
}

// journalMovedError is appendOnce's error when the node it sent the append to (one of a cluster,
// with Replicas) answered MOVED: the stream's slot has moved, as a failover does, and nothing was
// appended.
type journalMovedError struct {
	addr string // the node now serving the slot
	err  error
}

func (e *journalMovedError) Error() string { return e.err.Error() }

// journalMoved returns the address of a MOVED error reply.
func journalMoved(err error) (string, bool) {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return "", false
	}
	f := strings.Fields(rerr.Error())
	if len(f) != 3 || f[0] != "MOVED" {
		return "", false
	}
	return f[2], true
}

// follow waits, within a quarter of the journal's Timeout (so that the Write, bounded by the
// Timeout, still has time to append), until the cluster client sends the stream's commands to
// addr, the node a MOVED reply named. The pipeline of a Journal with Replicas goes to one node
// (see pipeline), so go-redis does not follow the redirection itself.
func (j *Journal[K, V]) follow(ctx context.Context, addr string) bool {
	c, ok := j.client.(*redis.ClusterClient)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, j.timeout/4)
	defer cancel()
	for {
		c.ReloadState(ctx)
		if node, err := c.MasterForKey(ctx, j.stream); err == nil && node.Options().Addr == addr {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// classify wraps err, an append's failure, in ErrJournalAmbiguous unless the append surely did
// not take effect: a reply from Redis (an error reply means the script wrote nothing) or a
// connection that could not be made, and only with a client that never sends a command twice.
func (j *Journal[K, V]) classify(err error) error {
	if !j.retries {
		var rerr redis.Error
		var op *net.OpError
		if (errors.As(err, &rerr) && !errors.Is(err, redis.Nil)) || (errors.As(err, &op) && op.Op == "dial") ||
			errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) {
			return fmt.Errorf("writebehind: journal: append: %w", err)
		}
	}
	return fmt.Errorf("writebehind: journal: append: %w: %w", ErrJournalAmbiguous, err)
}

// journalParseAppend reads the script's reply: the IDs appended, and the messages delivered.
func journalParseAppend(res any) ([]string, []redis.XMessage, error) {
	top, ok := res.([]any)
	if !ok || len(top) != 2 {
		return nil, nil, fmt.Errorf("unexpected reply %T", res)
	}
	rawIDs, _ := top[0].([]any)
	ids := make([]string, len(rawIDs))
	for i, r := range rawIDs {
		if ids[i], ok = r.(string); !ok {
			return nil, nil, fmt.Errorf("unexpected ID %T", r)
		}
	}
	rawMsgs, _ := top[1].([]any)
	msgs := make([]redis.XMessage, 0, len(rawMsgs))
	for _, rm := range rawMsgs {
		pair, ok := rm.([]any)
		if !ok || len(pair) != 2 {
			return nil, nil, fmt.Errorf("unexpected message %T", rm)
		}
		id, _ := pair[0].(string)
		m := redis.XMessage{ID: id, Values: map[string]any{}}
		kv, _ := pair[1].([]any)
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			m.Values[k] = kv[i+1]
		}
		msgs = append(msgs, m)
	}
	return ids, msgs, nil
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
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	if err := j.client.XAck(ctx, j.stream, j.group, ids...).Err(); err != nil {
		return fmt.Errorf("writebehind: journal: ack %d entries: %w", len(ids), err)
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
