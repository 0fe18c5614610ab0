package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/tracing"
)

// UserCreated is the event of the user.created topic.
type UserCreated struct {
	ID    int64     `json:"id"`
	Name  string    `json:"name"`
	Email string    `json:"email"`
	At    time.Time `json:"at"`
}

// Mail is a welcome e-mail the mailer "sent": it lands in the outbox, which GET /debug/outbox shows.
type Mail struct {
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
	UserID  int64     `json:"user_id"`
	TraceID string    `json:"trace_id"` // the trace of the POST that created the user
	SentAt  time.Time `json:"sent_at"`
}

// maxOutbox bounds the outbox so that a long-running demo does not grow without end.
const maxOutbox = 1000

// outbox keeps the most recent mails in memory; a real service would hand them to an SMTP relay.
type outbox struct {
	mu    sync.Mutex
	mails []Mail
}

func (o *outbox) add(m Mail) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.mails) == maxOutbox {
		o.mails = slices.Delete(o.mails, 0, 1)
	}
	o.mails = append(o.mails, m)
}

// list returns a copy of the mails, oldest first.
func (o *outbox) list() []Mail {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.mails)
}

// events is the in-process event bus with the user.created topic and its one subscriber, the
// welcome mailer.
type events struct {
	bus     *eventbus.Bus
	created *eventbus.Topic[UserCreated]
	mailer  *eventbus.Subscription
	outbox  *outbox
}

// startEvents creates the bus and subscribes the mailer. The mailer is asynchronous, so that a
// POST does not wait for an e-mail, with one worker (mails go out in creation order), a bounded
// queue that makes publishers wait when full, and three attempts per event.
func startEvents(tracer *tracing.Tracer, log *slog.Logger, m *metrics) (*events, error) {
	bus, err := eventbus.New(eventbus.Options{Hooks: m.busHooks(), Logger: log})
	if err != nil {
		return nil, err
	}
	e := &events{bus: bus, outbox: &outbox{}}
	if e.created, err = eventbus.NewTopic[UserCreated](bus, "user.created"); err != nil {
		bus.Close(context.Background())
		return nil, err
	}
	send := func(ctx context.Context, u UserCreated) error {
		// ctx carries the publisher's values, so this span joins the trace of the POST.
		ctx, span := tracer.Start(ctx, "send welcome e-mail", tracing.WithSpanKind(tracing.SpanKindConsumer),
			tracing.WithAttributes(tracing.String("messaging.destination.name", "user.created"), tracing.Int64("user.id", u.ID)))
		defer span.End()
		e.outbox.add(Mail{
			To:      u.Email,
			Subject: "Welcome, " + u.Name,
			Body:    fmt.Sprintf("Hello %s, your account %d is ready.", u.Name, u.ID),
			UserID:  u.ID,
			TraceID: tracing.SpanContextFromContext(ctx).TraceID.String(),
			SentAt:  time.Now().UTC(),
		})
		return nil
	}
	e.mailer, err = e.created.Subscribe(send, eventbus.SubscribeOptions[UserCreated]{
		Name:        "welcome-email",
		Async:       true,
		QueueSize:   256,
		MaxAttempts: 3,
		Backoff:     eventbus.Backoff{Initial: 100 * time.Millisecond, Jitter: 0.2},
		DeadLetter: func(_ context.Context, u UserCreated, err error) {
			log.Error("welcome e-mail given up", "user", u.ID, "err", err)
		},
	})
	if err != nil {
		bus.Close(context.Background())
		return nil, err
	}
	return e, nil
}

// Close drains the mailer's queue (until ctx ends) and stops the bus.
func (e *events) Close(ctx context.Context) error { return e.bus.Close(ctx) }
