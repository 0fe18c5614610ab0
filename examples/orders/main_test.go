package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const wait = 10 * time.Second // the longest any asynchronous step may take under -race

// testConfig is the configuration the smoke tests start from: any free port, quick shutdown.
func testConfig(mode, role string) config {
	return config{
		addr:            "127.0.0.1:0",
		mode:            mode,
		role:            role,
		consumer:        "test",
		claimIdle:       time.Second,
		mailFailEvery:   3,
		shutdownTimeout: 2 * time.Second,
		logger:          slog.New(slog.DiscardHandler),
	}
}

// instance is one running copy of the program.
type instance struct {
	t    *testing.T
	url  string
	stop func() error // cancels run's ctx and returns run's result
}

// start calls run in a goroutine and waits until it listens.
func start(t *testing.T, cfg config) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, func(a string) { addr <- a }) }()
	in := &instance{t: t}
	select {
	case a := <-addr:
		in.url = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(wait):
		cancel()
		t.Fatal("run did not listen in time")
	}
	stopped := false
	var result error
	in.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { _ = in.stop() })
	return in
}

// place posts an order of items and returns it as the API answered.
func (in *instance) place(customer string, items ...Item) Order {
	in.t.Helper()
	body, err := json.Marshal(placeOrderRequest{Customer: customer, Email: customer + "@example.com", Items: items})
	require.NoError(in.t, err)
	resp, err := http.Post(in.url+"/orders", "application/json", bytes.NewReader(body))
	require.NoError(in.t, err)
	defer resp.Body.Close()
	require.Equal(in.t, http.StatusAccepted, resp.StatusCode)
	var o Order
	require.NoError(in.t, json.NewDecoder(resp.Body).Decode(&o))
	require.Equal(in.t, "/orders/"+fmt.Sprint(o.ID), resp.Header.Get("Location"))
	return o
}

// get decodes the JSON answer of GET path into v and returns the status code.
func (in *instance) get(path string, v any) int {
	in.t.Helper()
	resp, err := http.Get(in.url + path)
	require.NoError(in.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(in.t, err)
	if resp.StatusCode == http.StatusOK && v != nil {
		require.NoError(in.t, json.Unmarshal(data, v), string(data))
	}
	return resp.StatusCode
}

func (in *instance) orders() []Order {
	var o []Order
	in.get("/orders", &o)
	return o
}

func (in *instance) notifications() []Notification {
	var n []Notification
	in.get("/notifications", &n)
	return n
}

// delivered returns this process's delivered count per consumer group.
func (in *instance) delivered() map[string]uint64 {
	var s statsResponse
	in.get("/stats", &s)
	out := map[string]uint64{}
	for _, sub := range s.Subscribers {
		out[sub.Group] = sub.Delivered
	}
	return out
}

// allHave reports whether there are n orders and each has finished every step in steps.
func allHave(orders []Order, n int, steps ...string) bool {
	if len(orders) != n {
		return false
	}
	for _, o := range orders {
		for _, s := range steps {
			if o.Steps[s] == "" {
				return false
			}
		}
	}
	return true
}

// TestInProcess places orders on the in-process bus: stock goes down, e-mails reach the outbox
// despite the flaky mailer (retries), and an order for a sold-out item ends in the dead letters.
func TestInProcess(t *testing.T) {
	app := start(t, testConfig(modeInproc, roleAll))

	for i := range 5 {
		app.place(fmt.Sprintf("customer%d", i), Item{SKU: "espresso", Qty: 2}, Item{SKU: "croissant", Qty: 1})
	}
	ticket := app.place("ada", Item{SKU: "golden-ticket", Qty: 1})
	require.Eventually(t, func() bool {
		var o Order
		return app.get(fmt.Sprintf("/orders/%d", ticket.ID), &o) == http.StatusOK && o.Steps[groupInventory] != ""
	}, wait, 10*time.Millisecond, "the only golden ticket is reserved")
	soldOut := app.place("grace", Item{SKU: "golden-ticket", Qty: 1})

	require.Eventually(t, func() bool {
		var dl []DeadLetter
		app.get("/deadletters", &dl)
		return len(dl) == 1
	}, wait, 10*time.Millisecond, "the sold-out order is dead-lettered after its retries")
	var dl []DeadLetter
	app.get("/deadletters", &dl)
	assert.Equal(t, soldOut.ID, dl[0].OrderID)
	assert.Equal(t, groupInventory, dl[0].Group)
	assert.Contains(t, dl[0].Error, "out of stock: golden-ticket")

	require.Eventually(t, func() bool { return len(app.notifications()) == 7 }, wait, 10*time.Millisecond,
		"every order gets its e-mail, the mailer's failures retried")
	seen := map[int]int{}
	for _, n := range app.notifications() {
		seen[n.OrderID]++
	}
	assert.Len(t, seen, 7, "one e-mail per order")

	var stock map[string]int
	app.get("/inventory", &stock)
	assert.Equal(t, map[string]int{"espresso": 90, "croissant": 45, "golden-ticket": 0}, stock)

	require.Eventually(t, func() bool {
		var failed Order
		return app.get(fmt.Sprintf("/orders/%d", soldOut.ID), &failed) == http.StatusOK && failed.Status == "failed" &&
			failed.Failure != "" && failed.Steps[groupInventory] == ""
	}, wait, 10*time.Millisecond, "the dead-lettered order is cancelled in the read model")
	require.Eventually(t, func() bool {
		var o Order
		app.get(fmt.Sprintf("/orders/%d", ticket.ID), &o)
		return o.Status == "completed"
	}, wait, 10*time.Millisecond)

	// The counters move just after the handlers' effects, hence Eventually.
	require.Eventually(t, func() bool {
		return assert.ObjectsAreEqual(map[string]uint64{groupPayments: 7, groupInventory: 6, groupNotifications: 7}, app.delivered())
	}, wait, 10*time.Millisecond, "each order handled once per group, the sold-out one dead-lettered by inventory")
	var stats statsResponse
	app.get("/stats", &stats)
	require.Len(t, stats.Subscribers, 3)
	inventory, notifications := stats.Subscribers[1], stats.Subscribers[2]
	assert.Equal(t, uint64(1), inventory.DeadLettered)
	assert.Equal(t, uint64(inventoryRetry.MaxAttempts), inventory.Failed, "the sold-out order was tried as often as the policy says")
	assert.Positive(t, notifications.Failed, "the flaky mailer failed some attempts")
	assert.Zero(t, notifications.DeadLettered, "and the retries made up for it")
	assert.Equal(t, "closed", stats.Breaker)

	assert.Equal(t, http.StatusNotFound, app.get("/orders/999", nil))
	resp, err := http.Post(app.url+"/orders", "application/json", bytes.NewReader([]byte(`{"customer":"x","email":"x@example.com","items":[{"sku":"caviar","qty":1}]}`)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	require.NoError(t, app.stop())
}

// stuckMailer hangs until its ctx is canceled, like a mail relay that stopped answering; it
// reports each order it got stuck on.
type stuckMailer struct{ stuck chan int }

func (m *stuckMailer) Send(ctx context.Context, n Notification) error {
	m.stuck <- n.OrderID
	<-ctx.Done()
	return ctx.Err()
}

// TestRedisStreams runs the API and two workers as separate instances sharing one Redis: every
// order is handled once per consumer group, split between the workers, and the e-mail a worker
// was holding when it stopped is sent by the other one.
func TestRedisStreams(t *testing.T) {
	m := miniredis.RunT(t)
	// Redis's clock is frozen, so no event looks idle long enough to be claimed until the test
	// moves the clock on: the hand-over below happens exactly when the test says.
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.SetTime(t0)
	// The three instances stand for three processes sharing a Redis and a PostgreSQL event store;
	// here they share one in-memory event store (TestPostgresRedis runs them on real servers).
	events := eventstore.NewMemory()
	redisConfig := func(role, consumer string) config {
		cfg := testConfig(modeRedis, role)
		cfg.redisAddr, cfg.consumer, cfg.events = m.Addr(), consumer, events
		return cfg
	}
	api := start(t, redisConfig(roleAPI, "api"))

	// worker-1 is alone at first; its mailer hangs on the first e-mail.
	mail := &stuckMailer{stuck: make(chan int, 10)}
	cfg1 := redisConfig(roleWorker, "worker-1")
	cfg1.mailer = mail
	cfg1.shutdownTimeout = 300 * time.Millisecond // then it gives up on the stuck e-mail
	worker1 := start(t, cfg1)
	first := api.place("ada", Item{SKU: "espresso", Qty: 1})
	select {
	case id := <-mail.stuck:
		require.Equal(t, first.ID, id)
	case <-time.After(wait):
		t.Fatal("worker-1 never tried to send the first e-mail")
	}

	worker2 := start(t, redisConfig(roleWorker, "worker-2"))
	const n = 12
	for i := 1; i < n; i++ {
		api.place(fmt.Sprintf("customer%d", i), Item{SKU: "croissant", Qty: 2})
	}

	// Every order is paid and reserved once, by one worker or the other; every e-mail but the
	// stuck one is sent by worker-2.
	sum := func(group string) uint64 { return worker1.delivered()[group] + worker2.delivered()[group] }
	require.Eventually(t, func() bool {
		return sum(groupPayments) == n && sum(groupInventory) == n && worker2.delivered()[groupNotifications] == n-1
	}, wait, 20*time.Millisecond, "payments and inventory handled each order once across the workers")
	require.Eventually(t, func() bool { return allHave(api.orders(), n, groupPayments, groupInventory) }, wait, 10*time.Millisecond,
		"the API's read model follows the workers' events")
	assert.Len(t, api.notifications(), n-1)
	assert.Zero(t, worker1.delivered()[groupNotifications], "worker-1 is stuck on its e-mail")

	// Stop worker-1 mid-e-mail: Close gives up after its timeout and leaves the event pending in
	// Redis, which is not an error. Once it has been idle for claimIdle, worker-2 claims it.
	require.NoError(t, worker1.stop())
	m.SetTime(t0.Add(time.Minute))
	require.Eventually(t, func() bool { return worker2.delivered()[groupNotifications] == n }, wait, 20*time.Millisecond,
		"worker-2 sends the e-mail worker-1 left pending")

	require.Eventually(t, func() bool { return allHave(api.orders(), n, groupPayments, groupInventory, groupNotifications) },
		wait, 10*time.Millisecond)
	orders := api.orders()
	assert.Equal(t, "worker-2", orders[0].Steps[groupNotifications])
	assert.Equal(t, "completed", orders[0].Status)
	traces := map[int]string{}
	for _, o := range orders {
		traces[o.ID] = o.TraceID
	}
	sent := map[int]int{}
	for _, note := range api.notifications() {
		sent[note.OrderID]++
		assert.Equal(t, "worker-2", note.SentBy)
		assert.Equal(t, traces[note.OrderID], note.TraceID, "the trace of POST /orders reached the worker through the stream")
	}
	assert.Len(t, sent, n)
	for id, times := range sent {
		assert.Equal(t, 1, times, "order %d e-mailed once", id)
	}
	var stock map[string]int
	api.get("/inventory", &stock)
	assert.Equal(t, 99, stock["espresso"])
	assert.Equal(t, 50-2*(n-1), stock["croissant"])

	// Nothing is left unacknowledged in any consumer group.
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	for stream, groups := range map[string][]string{topicPlaced: {groupPayments}, topicProcessed: {groupInventory, groupNotifications}} {
		for _, g := range groups {
			p, err := rdb.XPending(context.Background(), stream, g).Result()
			require.NoError(t, err)
			assert.Zero(t, p.Count, "%s/%s", stream, g)
		}
	}
	require.NoError(t, worker2.stop())
	require.NoError(t, api.stop())
}

// TestConfigErrors: bad flags are reported together, before anything starts.
func TestConfigErrors(t *testing.T) {
	cfg := testConfig("kafka", roleWorker)
	cfg.claimIdle = 0
	err := run(context.Background(), cfg, nil)
	require.Error(t, err)
	for _, want := range []string{`-mode "kafka"`, "-role worker needs -mode redis", "-role worker needs -postgres", "-claim-idle"} {
		assert.ErrorContains(t, err, want)
	}
}

// TestMailerOutage: while the mailer is down the breaker opens and the retries back off; once it
// is back the e-mails go out and nothing is dead-lettered.
func TestMailerOutage(t *testing.T) {
	cfg := testConfig(modeInproc, roleAll)
	cfg.mailFailEvery = 0
	app := start(t, cfg)
	outage := func(d string) {
		resp, err := http.Post(app.url+"/mailer/outage?for="+d, "", nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	}
	stats := func() statsResponse {
		var s statsResponse
		app.get("/stats", &s)
		return s
	}

	outage("1h")
	for i := range 3 {
		app.place(fmt.Sprintf("customer%d", i), Item{SKU: "espresso", Qty: 1})
	}
	require.Eventually(t, func() bool { return stats().Opened > 0 }, wait, 5*time.Millisecond,
		"three failures in a row open the breaker")
	assert.Empty(t, app.notifications())

	outage("0s")
	require.Eventually(t, func() bool { return len(app.notifications()) == 3 }, wait, 10*time.Millisecond,
		"a probe finds the mailer back, the breaker closes, the queued e-mails go out")
	s := stats()
	assert.Equal(t, "closed", s.Breaker)
	assert.Zero(t, s.Subscribers[2].DeadLettered)
	var dl []DeadLetter
	app.get("/deadletters", &dl)
	assert.Empty(t, dl)
	require.NoError(t, app.stop())
}

// TestEmbeddedRedis: -mode redis without -redis runs the whole pipeline over a miniredis started
// in process, as `go run ./examples/orders -mode redis` does.
func TestEmbeddedRedis(t *testing.T) {
	app := start(t, testConfig(modeRedis, roleAll))
	o := app.place("ada", Item{SKU: "croissant", Qty: 3})
	require.Eventually(t, func() bool {
		var got Order
		app.get(fmt.Sprintf("/orders/%d", o.ID), &got)
		return got.Status == "completed"
	}, wait, 10*time.Millisecond)
	var stock map[string]int
	app.get("/inventory", &stock)
	assert.Equal(t, 47, stock["croissant"])
	require.NoError(t, app.stop())
}
