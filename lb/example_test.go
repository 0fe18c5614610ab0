package lb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/girder-go/girder/lb"
)

func Example() {
	b, err := lb.New(lb.Options[string]{
		Policy: lb.WeightedRoundRobin,
		Backends: []lb.Backend[string]{
			{Name: "a", Value: "10.0.0.1:80", Weight: 5},
			{Name: "b", Value: "10.0.0.2:80"},
			{Name: "c", Value: "10.0.0.3:80"},
		},
	})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	var order []string
	for range 7 {
		lease, err := b.Pick()
		if err != nil {
			panic(err)
		}
		order = append(order, lease.Name())
		lease.Done(nil, time.Millisecond) // the request's error and latency
	}
	fmt.Println(strings.Join(order, " "))
	// Output: a a b a c a a
}

func ExampleBalancer_Do() {
	b, _ := lb.New(lb.Options[string]{
		Policy:   lb.P2CPeakEWMA,
		Backends: []lb.Backend[string]{{Name: "only", Value: "10.0.0.1:80"}},
	})
	defer b.Close()
	err := b.Do(context.Background(), func(ctx context.Context, addr string) error {
		fmt.Println("calling", addr)
		return nil
	})
	fmt.Println(err)
	// Output:
	// calling 10.0.0.1:80
	// <nil>
}

func ExampleOptions_passive() {
	var events []string
	b, _ := lb.New(lb.Options[string]{
		Backends: []lb.Backend[string]{{Name: "a"}, {Name: "b", Backup: true}},
		Passive:  lb.Passive{MaxFails: 2, Window: 10 * time.Second, EjectFor: 30 * time.Second},
		Hooks: lb.Hooks{OnHealthChange: func(c lb.HealthChangeInfo) {
			events = append(events, fmt.Sprintf("%s healthy=%v (%v)", c.Backend, c.Healthy, c.Reason))
		}},
	})
	defer b.Close()
	for range 2 {
		lease, _ := b.Pick()
		lease.Done(errors.New("connection refused"), 0)
	}
	lease, _ := b.Pick()
	lease.Done(nil, 0)
	fmt.Println(events[0])
	fmt.Println("now serving:", lease.Name())
	// Output:
	// a healthy=false (failures)
	// now serving: b
}

func ExampleNewProxy() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from ", r.URL.Path)
	}))
	defer backend.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // refuses connections

	up, _ := url.Parse(backend.URL)
	down, _ := url.Parse(dead.URL)
	b, _ := lb.New(lb.Options[*url.URL]{Backends: []lb.Backend[*url.URL]{
		{Name: "down", Value: down}, {Name: "up", Value: up},
	}})
	defer b.Close()
	proxy, _ := lb.NewProxy(b, lb.ProxyOptions[*url.URL]{})

	front := httptest.NewServer(proxy)
	defer front.Close()
	resp, err := http.Get(front.URL + "/index")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello from /index
}

func ExampleOptions_placement() {
	// Any func(key) name works as the placement: here a fixed table; in an application, the
	// lookup of a consistent-hash ring (girder's shard.Ring, say) built over the same names.
	owners := map[string]string{"alice": "cart-2", "bob": "cart-1"}
	b, _ := lb.New(lb.Options[string]{
		Policy:    lb.ConsistentHash,
		Placement: func(key string) string { return owners[key] },
		Backends:  []lb.Backend[string]{{Name: "cart-1"}, {Name: "cart-2"}},
	})
	defer b.Close()
	for _, user := range []string{"alice", "bob", "alice"} {
		lease, _ := b.PickKey(user)
		fmt.Println(user, "→", lease.Name())
		lease.Done(nil, 0)
	}
	// Output:
	// alice → cart-2
	// bob → cart-1
	// alice → cart-2
}

// The proxy names each attempt's backend in the request's context, so a transport can keep
// per-backend state (here a counter; in practice a circuit breaker) without matching URLs.
func ExampleBackendFromContext() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1") {
			w.WriteHeader(http.StatusServiceUnavailable) // the first backend is failing
		}
	}))
	defer srv.Close()
	v1, _ := url.Parse(srv.URL + "/v1") // two backends on one host
	v2, _ := url.Parse(srv.URL + "/v2")
	b, err := lb.New(lb.Options[*url.URL]{Backends: []lb.Backend[*url.URL]{{Name: "v1", Value: v1}, {Name: "v2", Value: v2}}})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	transport := roundTripper(func(r *http.Request) (*http.Response, error) {
		_, name, _ := lb.BackendFromContext[*url.URL](r.Context())
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil {
			fmt.Println(name, resp.StatusCode)
		}
		return resp, err
	})
	proxy, err := lb.NewProxy(b, lb.ProxyOptions[*url.URL]{Transport: transport})
	if err != nil {
		panic(err)
	}
	front := httptest.NewServer(proxy)
	defer front.Close()
	req, _ := http.NewRequest(http.MethodPut, front.URL+"/item", strings.NewReader("body")) // retried: the proxy keeps the body
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("client got", resp.StatusCode)
	// Output:
	// v1 503
	// v2 200
	// client got 200
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A few errors spread over every backend do not take the service down: passive health ejects
// at most half of the backends (Passive.MaxEjected), and when none is healthy at all, panic mode
// still spreads picks over every backend unless FailClosed is set.
func ExamplePassive_maxEjected() {
	b, _ := lb.New(lb.Options[string]{
		Backends: []lb.Backend[string]{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}},
		Passive:  lb.Passive{MaxFails: 1},
	})
	defer b.Close()
	for range 8 { // every backend fails once
		lease, _ := b.Pick()
		lease.Done(errors.New("timeout"), time.Millisecond)
	}
	for _, s := range b.Stats() {
		fmt.Println(s.Name, "ejected:", s.Ejected)
	}
	_, err := b.Pick()
	fmt.Println("pick error:", err)
	// Output:
	// a ejected: true
	// b ejected: true
	// c ejected: false
	// d ejected: false
	// pick error: <nil>
}
