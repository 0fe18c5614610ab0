package eventbustest_test

import (
	"context"
	"sync"
	"testing"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbustest"
)

// reference is the smallest transport that honours the contract: synchronous delivery in the
// publisher's goroutine (the lock guards the subscriber list only, so handlers may publish),
// retries without waiting. It shows what the suite asks and keeps the suite itself tested.
type reference struct {
	mu     sync.Mutex
	closed bool
	subs   []refSub
}

type refSub struct {
	h eventbus.Handler[eventbustest.Event]
	o eventbustest.Options
}

func (r *reference) Publish(ctx context.Context, e eventbustest.Event) error {
	r.mu.Lock()
	closed, subs := r.closed, r.subs
	r.mu.Unlock()
	if closed {
		return eventbus.ErrClosed
	}
	for _, s := range subs {
		var err error
		for range max(s.o.MaxAttempts, 1) {
			if err = call(ctx, s.h, e); err == nil {
				break
			}
		}
		if err != nil && s.o.DeadLetter != nil {
			s.o.DeadLetter(ctx, e, err)
		}
	}
	return nil
}

func call(ctx context.Context, h eventbus.Handler[eventbustest.Event], e eventbustest.Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &eventbus.PanicError{Value: v}
		}
	}()
	return h(ctx, e)
}

func (r *reference) Subscribe(h eventbus.Handler[eventbustest.Event], o eventbustest.Options) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return eventbus.ErrClosed
	}
	r.subs = append(r.subs[:len(r.subs):len(r.subs)], refSub{h, o})
	return nil
}

func (r *reference) Close(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func TestReferenceTransportPassesTheContract(t *testing.T) {
	eventbustest.Run(t, func(t *testing.T) eventbustest.Transport { return &reference{} })
}
