package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LoadCheckpoint implements eventstore.CheckpointStore (table girder_checkpoints).
func (s *Store) LoadCheckpoint(ctx context.Context, name string) (int64, error) {
	var next int64
	err := s.pool.QueryRow(ctx, `SELECT next FROM `+s.checkpoints+` WHERE name = $1`, name).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: load checkpoint %s: %w", name, err)
	}
	return next, nil
}

// SaveCheckpoint implements eventstore.CheckpointStore.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, next int64) error {
	if err := s.saveCheckpoint(ctx, s.pool, name, next); err != nil {
		return fmt.Errorf("pgstore: save checkpoint %s: %w", name, err)
	}
	return nil
}

func (s *Store) saveCheckpoint(ctx context.Context, db *pgxpool.Pool, name string, next int64) error {
	_, err := db.Exec(ctx, `INSERT INTO `+s.checkpoints+` (name, next) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET next = excluded.next`, name, next)
	return err
}

// TxProjection is a projection whose read model lives in the same PostgreSQL database: each
// event is handled in its own transaction, which also advances the checkpoint, so the read
// model sees each event exactly once, across crashes and restarts. The checkpoint row is locked
// (SELECT … FOR UPDATE) and checked in that transaction, so an event already applied (by a
// second runner of the same projection) is skipped rather than applied twice.
type TxProjection struct {
	Name  string
	Store *Store
	// Handle applies e to the read model through tx. Its error rolls the transaction back, read
	// model and checkpoint together, and ends Run.
	Handle func(ctx context.Context, tx pgx.Tx, e eventstore.RecordedEvent) error
	// Hooks.OnProject observes each event's transaction (handler, checkpoint and commit);
	// Hooks.OnCheckpoint each checkpoint committed with it, or, with Err set, the transaction
	// that failed and left it where it was. An event skipped as applied already calls only
	// OnProject. Other fields are not used here.
	Hooks eventstore.Hooks
}

// Validate reports what is missing from p; Run and Rebuild call it.
func (p TxProjection) Validate() error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("pgstore: TxProjection: Name is empty"))
	}
	if p.Store == nil {
		errs = append(errs, errors.New("pgstore: TxProjection: Store is nil"))
	}
	if p.Handle == nil {
		errs = append(errs, errors.New("pgstore: TxProjection: Handle is nil"))
	}
	return errors.Join(errs...)
}

// Run subscribes from the checkpoint and runs until ctx ends (returning ctx.Err()) or Handle
// fails (a *eventstore.HandlerError). Cost: one transaction of three round trips plus
// Handle's per event.
func (p TxProjection) Run(ctx context.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s := p.Store
	next, err := s.LoadCheckpoint(ctx, p.Name)
	if err != nil {
		return err
	}
	return s.Subscribe(ctx, next, func(ctx context.Context, e eventstore.RecordedEvent) error {
		advanced := false
		err := p.Hooks.ObserveProject(ctx, p.Name, e, func() error {
			return p.handle(ctx, e, &advanced)
		})
		if h := p.Hooks.OnCheckpoint; h != nil && (advanced || err != nil) {
			h(ctx, eventstore.CheckpointInfo{Projection: p.Name, Next: e.Position + 1, Err: err})
		}
		return err
	})
}

// handle applies e and advances the checkpoint in one transaction; advanced reports whether it
// committed a new checkpoint (false when e was applied already).
func (p TxProjection) handle(ctx context.Context, e eventstore.RecordedEvent, advanced *bool) error {
	s := p.Store
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.checkpoints+` (name, next) VALUES ($1, 0) ON CONFLICT DO NOTHING`, p.Name); err != nil {
			return err
		}
		var cur int64
		if err := tx.QueryRow(ctx, `SELECT next FROM `+s.checkpoints+` WHERE name = $1 FOR UPDATE`, p.Name).Scan(&cur); err != nil {
			return err
		}
		if cur > e.Position {
			*advanced = false
			return nil // applied already
		}
		if err := p.Handle(ctx, tx, e); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE `+s.checkpoints+` SET next = $2 WHERE name = $1`, p.Name, e.Position+1)
		*advanced = err == nil // committed unless the commit itself fails, which err reports
		return err
	})
}

// Rebuild runs reset (clearing the read model) and sets the checkpoint to 0 in one transaction,
// so that the next Run replays every event.
func (p TxProjection) Rebuild(ctx context.Context, reset func(ctx context.Context, tx pgx.Tx) error) error {
	if err := p.Validate(); err != nil {
		return err
	}
	var resetErr error
	err := pgx.BeginFunc(ctx, p.Store.pool, func(tx pgx.Tx) error {
		if reset != nil {
			if resetErr = reset(ctx, tx); resetErr != nil {
				return resetErr
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+p.Store.checkpoints+` (name, next) VALUES ($1, 0)
ON CONFLICT (name) DO UPDATE SET next = 0`, p.Name)
		return err
	})
	switch {
	case err == nil:
		return nil
	case resetErr != nil:
		return fmt.Errorf("pgstore: projection %s: reset: %w", p.Name, err)
	}
	return fmt.Errorf("pgstore: projection %s: rebuild: %w", p.Name, err)
}
