// Command tour walks through each girder package on embedded defaults — miniredis for Redis,
// in-memory data for PostgreSQL — printing what each chapter demonstrates. No servers are needed.
//
//	go run ./examples/tour              every chapter
//	go run ./examples/tour -only cache  one chapter (comma-separated for several)
//	go run ./examples/tour -only replica -postgres DSN -replicas DSN,DSN
//	                                    the replica chapter on real PostgreSQL servers
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// chapter is one package's part of the tour. Each file of this command registers its chapter
// from init.
type chapter struct {
	name  string // the package it shows: "breaker"
	title string // one line: what the pattern is for
	run   func(ctx context.Context, w io.Writer) error
}

// order is the order in which chapters are told, whatever order the files register them in.
var order = []string{"cache", "writebehind", "shard", "replica", "breaker", "ratelimit", "lb", "adaptive", "eventbus", "tracing"}

var chapters = map[string]chapter{}

func register(c chapter) { chapters[c.name] = c }

// quietRedis discards go-redis's own log lines. The chapters that take Redis away show the failure
// through girder's errors and hooks; go-redis would also print each failed dial to stderr.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietRedis{}) }

// runTour runs the selected chapters (all when only is empty) and stops at the first error.
func runTour(ctx context.Context, w io.Writer, only []string) error {
	ran := 0
	for _, name := range order {
		c, ok := chapters[name]
		if !ok || (len(only) > 0 && !slices.Contains(only, name)) {
			continue
		}
		fmt.Fprintf(w, "\n== %s: %s\n\n", c.name, c.title)
		if err := c.run(ctx, w); err != nil {
			return fmt.Errorf("tour: chapter %s: %w", c.name, err)
		}
		ran++
	}
	for _, name := range only {
		if _, ok := chapters[name]; !ok {
			return fmt.Errorf("tour: no chapter %q", name)
		}
	}
	fmt.Fprintf(w, "\n%d chapters, all ran.\n", ran)
	return nil
}

func main() {
	only := flag.String("only", "", "run only these chapters (comma-separated)")
	flag.StringVar(&tourReplicaDSNs.primary, "postgres", "", "replica chapter: DSN of a real PostgreSQL primary")
	replicas := flag.String("replicas", "", "replica chapter: DSNs of its streaming replicas (comma-separated)")
	flag.Parse()
	if *replicas != "" {
		tourReplicaDSNs.replicas = strings.Split(*replicas, ",")
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fmt.Println("girder tour: scalability patterns on embedded defaults (no servers needed)")
	if err := runTour(ctx, os.Stdout, names); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
