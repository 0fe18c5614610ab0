package redisstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is matched (errors.Is) by a *ReplicaError.
var ErrNotReplicated = errors.New("redisstream: event not confirmed on enough replicas")

// ReplicaError is the error of a Publish, on a Transport with Options.Replicas set, whose entry
// the master wrote but fewer than Want replicas confirmed within Options.ReplicaTimeout (or the
// WAIT itself failed: then Err says why). The event is delivered unless the master fails over to
// a replica that lacks it, which loses it: its outcome is unknown, so the error matches
// ErrMaybePublished as well as ErrNotReplicated, and a retry should reuse its ID.
type ReplicaError struct {
	Stream string
	ID     string // the event's ID; publish again with WithEventID(ctx, ID) to retry safely
	Want   int    // replicas asked for (Options.Replicas)
	Got    int    // replicas that confirmed
	Err    error  // the WAIT's failure; nil when it answered
}

func (e *ReplicaError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("redisstream: publish %s to %s: written on the master, waiting for %d replicas failed: %v", e.ID, e.Stream, e.Want, e.Err)
	}
	return fmt.Sprintf("redisstream: publish %s to %s: written on the master but confirmed on %d of %d replicas", e.ID, e.Stream, e.Got, e.Want)
}

// Unwrap returns the WAIT's failure, if any.
func (e *ReplicaError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotReplicated) and errors.Is(err, ErrMaybePublished) true.
func (e *ReplicaError) Is(target error) bool {
	return target == ErrNotReplicated || target == ErrMaybePublished
}

// redirectBackoff spaces the attempts of a replicated publish that met a slot redirect.
var redirectBackoff = [...]time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}

// addAndWait appends args (XADD) and waits for Options.Replicas replicas (WAIT) on one
// connection: WAIT counts the replicas that have the writes of its own connection. On a
// cluster that connection is to the stream's master, which a plain node client does not follow
// when the slot moves; a redirect (MOVED, ASK: the entry was not written) reloads the slot map
// and tries again, a few times, within ctx.
func (t *Transport) addAndWait(ctx context.Context, args *redis.XAddArgs, id string) error {
	o := t.opts
	for attempt := 0; ; attempt++ {
		var pipe redis.Pipeliner
		cc, cluster := o.Client.(*redis.ClusterClient)
		if cluster {
			node, err := cc.MasterForKey(ctx, args.Stream)
			if err != nil {
				return &PublishError{Stream: args.Stream, ID: id, Err: err} // nothing sent
			}
			pipe = node.Pipeline()
		} else {
			pipe = o.Client.Pipeline() // one connection
		}
		add := pipe.XAdd(ctx, args)
		wait := pipe.Do(ctx, "WAIT", o.Replicas, o.ReplicaTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		if err := add.Err(); err != nil {
			if cluster && attempt < len(redirectBackoff) && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")) {
				cc.ReloadState(ctx)
				select {
				case <-time.After(redirectBackoff[attempt]):
					continue
				case <-ctx.Done():
					return &PublishError{Stream: args.Stream, ID: id, Err: ctx.Err()}
				}
			}
			return &PublishError{Stream: args.Stream, ID: id, Ambiguous: ambiguous(err), Err: err}
		}
		got, err := wait.Int()
		if err != nil {
			return &ReplicaError{Stream: args.Stream, ID: id, Want: o.Replicas, Err: err}
		}
		if got < o.Replicas {
			return &ReplicaError{Stream: args.Stream, ID: id, Want: o.Replicas, Got: got}
		}
		return nil
	}
}
