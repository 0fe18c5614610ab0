package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/girder-go/girder/eventbus"
)

// CheckpointStore keeps, per projection name, the position a projection resumes from (the
// position after the last event it handled; 0 for none).
type CheckpointStore interface {
	LoadCheckpoint(ctx context.Context, name string) (next int64, err error)
	SaveCheckpoint(ctx context.Context, name string, next int64) error
}

// Projection feeds every event of a Store, in position order, to Handle, and records its
// progress in Checkpoints under Name, so that a restarted projection resumes where it stopped.
//
// Delivery is at least once: the checkpoint is saved after Handle returns, so a crash between
// the two hands the event again on restart; Handle must be idempotent (an upsert, or a check
// of the event's Stream and Version). For exactly once, keep the read model in PostgreSQL and
// use pgstore's TxProjection, which commits the read model and the checkpoint in one
// transaction.
type Projection struct {
	Name        string
	Store       Store
	Checkpoints CheckpointStore
	Handle      Handler
	// SaveEvery saves the checkpoint after every SaveEvery events (and when Run ends); 0: 1.
	// A larger value saves writes and redelivers up to SaveEvery events after a crash.
	SaveEvery int
	// Hooks.OnProject and Hooks.OnCheckpoint observe the projection; the other fields are not
	// used here.
	Hooks Hooks
}

// Validate reports what is missing from p; Run and Rebuild call it.
func (p Projection) Validate() error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("eventstore: Projection: Name is empty"))
	}
	if p.Store == nil {
		errs = append(errs, errors.New("eventstore: Projection: Store is nil"))
	}
	if p.Checkpoints == nil {
		errs = append(errs, errors.New("eventstore: Projection: Checkpoints is nil"))
	}
	if p.Handle == nil {
		errs = append(errs, errors.New("eventstore: Projection: Handle is nil"))
	}
	if p.SaveEvery < 0 {
		errs = append(errs, fmt.Errorf("eventstore: Projection: SaveEvery %d is negative", p.SaveEvery))
	}
	return errors.Join(errs...)
}

// Run subscribes from the saved checkpoint and runs until ctx ends (it returns ctx.Err()) or
// Handle fails (a *HandlerError; the checkpoint stays before the failed event).
func (p Projection) Run(ctx context.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	next, err := p.Checkpoints.LoadCheckpoint(ctx, p.Name)
	if err != nil {
		return fmt.Errorf("eventstore: projection %s: load checkpoint: %w", p.Name, err)
	}
	every := max(p.SaveEvery, 1)
	pending, saved := 0, next
	err = p.Store.Subscribe(ctx, next, func(ctx context.Context, e RecordedEvent) error {
		if err := p.Hooks.ObserveProject(ctx, p.Name, e, func() error { return p.Handle(ctx, e) }); err != nil {
			return err
		}
		next = e.Position + 1
		if pending++; pending >= every {
			if err := p.saveCheckpoint(ctx, next); err != nil {
				return fmt.Errorf("eventstore: projection %s: save checkpoint: %w", p.Name, err)
			}
			pending, saved = 0, next
		}
		return nil
	})
	if next != saved {
		// Save what was handled; ctx may be done, so use a fresh one for this last write.
		if serr := p.saveCheckpoint(context.WithoutCancel(ctx), next); serr != nil {
			err = errors.Join(err, fmt.Errorf("eventstore: projection %s: save checkpoint: %w", p.Name, serr))
		}
	}
	return err
}

func (p Projection) saveCheckpoint(ctx context.Context, next int64) error {
	err := p.Checkpoints.SaveCheckpoint(ctx, p.Name, next)
	if h := p.Hooks.OnCheckpoint; h != nil {
		h(ctx, CheckpointInfo{Projection: p.Name, Next: next, Err: err})
	}
	return err
}

// Rebuild clears the read model (reset) and the checkpoint, so that the next Run replays every
// event from position 0.
func (p Projection) Rebuild(ctx context.Context, reset func(ctx context.Context) error) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if reset != nil {
		if err := reset(ctx); err != nil {
			return fmt.Errorf("eventstore: projection %s: reset: %w", p.Name, err)
		}
	}
	return p.Checkpoints.SaveCheckpoint(ctx, p.Name, 0)
}

type recordedKey struct{}

// Recorded returns the stored event an Outbox is publishing, from the ctx its Publisher gets:
// a publisher can take a deduplication ID from it (its Stream and Version, or its Position),
// for example redisstream.WithEventID(ctx, fmt.Sprint(e.Position)).
func Recorded(ctx context.Context) (RecordedEvent, bool) {
	e, ok := ctx.Value(recordedKey{}).(RecordedEvent)
	return e, ok
}

// Outbox publishes stored events to a Publisher (an eventbus.Topic, a redisstream.Topic): a
// Projection whose handler decodes each event with Codec and publishes it. Because the events
// are the outbox (they are published from the store, after their Append committed), an event
// appended is published even if the process dies between the commit and the publish: the
// restarted Outbox resumes from its checkpoint. Publication is at least once (an event
// published just before a crash is published again) and in position order, so in order per
// stream. Filter, if set, selects the events to publish (by Type, say); the others are skipped.
type Outbox[E any] struct {
	Name        string
	Store       Store
	Checkpoints CheckpointStore
	Codec       Codec[E] // nil: JSON
	Publisher   eventbus.Publisher[E]
	Filter      func(RecordedEvent) bool
	SaveEvery   int
	// Hooks.OnProject (one call per event, publish included) and Hooks.OnCheckpoint observe
	// the outbox.
	Hooks Hooks
}

// Validate reports what is missing from o; Run calls it.
func (o Outbox[E]) Validate() error {
	var errs []error
	if o.Name == "" {
		errs = append(errs, errors.New("eventstore: Outbox: Name is empty"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("eventstore: Outbox: Store is nil"))
	}
	if o.Checkpoints == nil {
		errs = append(errs, errors.New("eventstore: Outbox: Checkpoints is nil"))
	}
	if o.Publisher == nil {
		errs = append(errs, errors.New("eventstore: Outbox: Publisher is nil"))
	}
	if o.SaveEvery < 0 {
		errs = append(errs, fmt.Errorf("eventstore: Outbox: SaveEvery %d is negative", o.SaveEvery))
	}
	return errors.Join(errs...)
}

// Run publishes until ctx ends (returning ctx.Err()) or a publish or decode fails (a
// *HandlerError naming the event; the checkpoint stays before it, so a restart retries it).
func (o Outbox[E]) Run(ctx context.Context) error {
	if err := o.Validate(); err != nil {
		return err
	}
	codec := o.Codec
	if codec == nil {
		codec = JSON[E]{}
	}
	return Projection{Name: o.Name, Store: o.Store, Checkpoints: o.Checkpoints, SaveEvery: o.SaveEvery, Hooks: o.Hooks,
		Handle: func(ctx context.Context, re RecordedEvent) error {
			if o.Filter != nil && !o.Filter(re) {
				return nil
			}
			e, err := codec.Unmarshal(re.Data)
			if err != nil {
				return err
			}
			return o.Publisher.Publish(context.WithValue(ctx, recordedKey{}, re), e)
		}}.Run(ctx)
}
