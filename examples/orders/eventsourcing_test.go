package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/girder-go/girder/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// types returns the Types of stream's events, in version order.
func types(t *testing.T, es eventstore.Store, stream string) []string {
	t.Helper()
	evs, err := es.ReadStream(context.Background(), stream, 1, 0)
	require.NoError(t, err)
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// completed waits until order id is completed in app's read model.
func completed(t *testing.T, app *instance, id int) Order {
	t.Helper()
	var o Order
	require.Eventually(t, func() bool {
		return app.get(fmt.Sprintf("/orders/%d", id), &o) == http.StatusOK && o.Status == "completed"
	}, wait, 10*time.Millisecond, "order %d completes", id)
	return o
}

// TestEventSourced: an order is its stream of events, with a snapshot once it has four; a
// restarted process rebuilds its read model from the events, publishes nothing twice (the
// outbox resumes from its checkpoint), and publishes an event recorded while it was down.
func TestEventSourced(t *testing.T) {
	ctx := context.Background()
	events := eventstore.NewMemory()
	cfg := testConfig(modeInproc, roleAll)
	cfg.mailFailEvery, cfg.events = 0, events

	app := start(t, cfg)
	first := app.place("ada", Item{SKU: "espresso", Qty: 2})
	completed(t, app, first.ID)
	got := types(t, events, streamOf(first.ID))
	require.Len(t, got, 4)
	assert.Equal(t, []string{evPlaced, evPaid}, got[:2])
	assert.ElementsMatch(t, []string{evReserved, evNotified}, got[2:], "inventory and notifications run concurrently")
	snap, ok, err := events.LoadSnapshot(ctx, streamOf(first.ID))
	require.NoError(t, err)
	require.True(t, ok, "the fourth event takes a snapshot")
	assert.Equal(t, int64(snapshotEvery), snap.Version)
	require.NoError(t, app.stop())

	// While no process runs, an order is recorded but not published: the commit happened, the
	// publish did not (a crash between the two).
	lost := OrderPlaced{ID: 2, Customer: "bob", Email: "bob@example.com", Items: []Item{{SKU: "croissant", Qty: 1}}, PlacedAt: time.Now().UTC()}
	recs, err := eventstore.Encode(eventstore.JSON[orderEvent]{}, "", orderEvent{Kind: evPlaced, Placed: &lost})
	require.NoError(t, err)
	_, err = events.Append(ctx, streamOf(2), eventstore.NoStream, recs...)
	require.NoError(t, err)

	app = start(t, cfg)
	var o Order
	require.Equal(t, http.StatusOK, app.get(fmt.Sprintf("/orders/%d", first.ID), &o), "the read model is rebuilt before the process serves")
	assert.Equal(t, "completed", o.Status)
	completed(t, app, 2)
	third := app.place("grace", Item{SKU: "espresso", Qty: 1})
	assert.Equal(t, 3, third.ID, "IDs continue after the ones in the store")
	completed(t, app, third.ID)
	assert.Equal(t, map[string]uint64{groupPayments: 2, groupInventory: 2, groupNotifications: 2}, app.delivered(),
		"the restarted outbox published the unpublished order and the new one, not the first again")
	var stock map[string]int
	app.get("/inventory", &stock)
	assert.Equal(t, 100-1, stock["espresso"], "this process's stock (in memory) saw only the new espresso order")
	require.NoError(t, app.stop())
}

// TestRecordIsIdempotentAndRetriesConflicts: a redelivered step records nothing new, and two
// writers of one order both get their events in, the later one after a version conflict.
func TestRecordIsIdempotentAndRetriesConflicts(t *testing.T) {
	ctx := context.Background()
	events := eventstore.NewMemory()
	conflicts := 0
	book, err := newOrderBook(events, testConfig(modeInproc, roleAll).logger, nil)
	require.NoError(t, err)
	defer book.close()
	book.agg.Hooks.OnConflict = func(context.Context, eventstore.ConflictInfo) { conflicts++ }

	o, err := book.place(ctx, OrderPlaced{Customer: "ada", Email: "a@example.com", Items: []Item{{SKU: "espresso", Qty: 1}}})
	require.NoError(t, err)
	require.NoError(t, book.record(ctx, o.ID, evPaid, "w1"))
	require.NoError(t, book.record(ctx, o.ID, evPaid, "w2"), "a redelivery")
	assert.Equal(t, []string{evPlaced, evPaid}, types(t, events, streamOf(o.ID)))

	// A writer that loaded at version 2 loses to one that saved in between: the store refuses
	// it, and update loads again and saves on top.
	stale, v, err := eventstore.Load(ctx, book.agg, streamOf(o.ID))
	require.NoError(t, err)
	require.NoError(t, book.record(ctx, o.ID, evReserved, "w1"))
	_, _, err = eventstore.Save(ctx, book.agg, streamOf(o.ID), stale, v, orderEvent{Kind: evNotified, By: "w2"})
	require.ErrorIs(t, err, eventstore.ErrVersionConflict)
	assert.Equal(t, 1, conflicts)
	require.NoError(t, book.record(ctx, o.ID, evNotified, "w2"))
	got, err := book.load(ctx, o.ID)
	require.NoError(t, err)
	assert.Equal(t, "completed", got.Status)
	assert.Equal(t, map[string]string{groupPayments: "w1", groupInventory: "w1", groupNotifications: "w2"}, got.Steps)

	// Two places racing for one ID: the second gets the next.
	book.lastID.Store(0)
	o2, err := book.place(ctx, OrderPlaced{Customer: "bob", Email: "b@example.com", Items: []Item{{SKU: "croissant", Qty: 1}}})
	require.NoError(t, err)
	assert.Equal(t, 2, o2.ID, "ID 1 is taken in the store, whatever this process believed")
	assert.ErrorIs(t, book.record(ctx, 99, evPaid, "w1"), errNotFound)
}

// TestPostgresRedis runs an API and a worker as the README shows, on real PostgreSQL (the event
// store) and real Redis (the bus and the services' state): orders complete, and a restarted API
// rebuilds the orders from PostgreSQL. Without Docker it skips; with CI=true it fails.
func TestPostgresRedis(t *testing.T) {
	pg := testenv.StartPostgres(t)
	rd := testenv.StartRedis(t)
	dsn, redisAddr := pg.DSN(t), rd.MustAddr(t)
	realConfig := func(role, consumer string) config {
		cfg := testConfig(modeRedis, role)
		cfg.redisAddr, cfg.postgresDSN, cfg.consumer, cfg.mailFailEvery = redisAddr, dsn, consumer, 0
		return cfg
	}
	api := start(t, realConfig(roleAPI, "api"))
	worker := start(t, realConfig(roleWorker, "worker-1"))
	var ids []int
	for i := range 3 {
		ids = append(ids, api.place(fmt.Sprintf("customer%d", i), Item{SKU: "croissant", Qty: 1}).ID)
	}
	for _, id := range ids {
		o := completed(t, api, id)
		assert.Equal(t, "worker-1", o.Steps[groupNotifications])
		assert.NotEmpty(t, o.TraceID)
	}
	assert.Len(t, api.notifications(), 3)
	require.NoError(t, api.stop())

	api = start(t, realConfig(roleAPI, "api"))
	assert.True(t, allHave(api.orders(), 3, groupPayments, groupInventory, groupNotifications),
		"the restarted API serves every order, rebuilt from PostgreSQL")
	next := api.place("dave", Item{SKU: "espresso", Qty: 1})
	assert.Equal(t, 4, next.ID)
	completed(t, api, next.ID)
	assert.Equal(t, uint64(4), worker.delivered()[groupPayments], "each order paid once: the outbox did not publish again after the restart")
	require.NoError(t, worker.stop())
	require.NoError(t, api.stop())
}
