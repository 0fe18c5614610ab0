// Command bench runs girder and the peer libraries of ANCHORS.md side by side in one process and
// prints one table: operation, girder's ns/op and allocs, the peer's, and the ratio
// (peer ns / girder ns, so above 1 means girder is faster). Absolute times drift on shared
// machines; ratios from one run do not.
//
//	go run .                       all rows, as a table
//	go run . -only breaker         one package's rows
//	go run . -json                 one JSON object per row
//	go run . -benchtime 10ms       shorter runs (CI uses this so the module cannot rot)
//	go run . -rounds 5             measure girder and peer alternately 5 times; report medians
//	go run . -redis ADDR           Redis rows against a real server (default: miniredis in process)
//	go run . -postgres DSN         PostgreSQL rows (skipped without it)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
)

// Row is one line of the table: one operation done by girder and, where there is one, by a peer.
type Row struct {
	Package string           // girder package: "breaker"
	Op      string           // what is measured: "closed Do, success"
	Girder  func(*testing.B) // girder's benchmark
	Peer    string           // peer library and version; "" when there is none
	PeerFn  func(*testing.B) // the peer's benchmark of the same operation
}

// Env holds the servers the rows may use.
type Env struct {
	RedisAddr   string // always set: a real server, or miniredis started by main
	PostgresDSN string // "" when not given
}

var suites []func(*Env) []Row

// register adds a package's rows; each file of this module calls it from init.
func register(f func(*Env) []Row) { suites = append(suites, f) }

// Result is one measured row, as -json prints it.
type Result struct {
	Package      string  `json:"package"`
	Op           string  `json:"op"`
	GirderNs     float64 `json:"girder_ns"`
	GirderAllocs int64   `json:"girder_allocs"`
	Peer         string  `json:"peer,omitempty"`
	PeerNs       float64 `json:"peer_ns,omitempty"`
	PeerAllocs   int64   `json:"peer_allocs,omitempty"`
	Ratio        float64 `json:"ratio,omitempty"`
}

// measurePair measures a row's girder and peer benchmarks alternately, rounds times, and returns
// the median of each side, so that a load spike on a shared machine skews one round, not the
// ratio. peer may be nil.
func measurePair(girder, peer func(*testing.B), rounds int) (res [2]sample) {
	var ns [2][]float64
	for range max(rounds, 1) {
		for i, f := range []func(*testing.B){girder, peer} {
			if f == nil {
				continue
			}
			n, a := measure(f)
			ns[i] = append(ns[i], n)
			res[i].allocs = a
		}
	}
	for i := range ns {
		if len(ns[i]) > 0 {
			slices.Sort(ns[i])
			res[i].ns = ns[i][len(ns[i])/2]
		}
	}
	return res
}

// sample is one side's figures: nanoseconds and allocations per operation.
type sample struct {
	ns     float64
	allocs int64
}

func measure(f func(*testing.B)) (ns float64, allocs int64) {
	r := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		f(b)
	})
	if r.N == 0 {
		return 0, 0
	}
	return float64(r.T.Nanoseconds()) / float64(r.N), r.AllocsPerOp()
}

func main() {
	testing.Init()
	only := flag.String("only", "", "run only this package's rows (comma-separated)")
	asJSON := flag.Bool("json", false, "print one JSON object per row")
	benchtime := flag.String("benchtime", "1s", "time (or Nx iterations) per benchmark")
	rounds := flag.Int("rounds", 1, "measure girder and the peer alternately this many times and report medians")
	redisAddr := flag.String("redis", os.Getenv("GIRDER_BENCH_REDIS"), "Redis address (default: miniredis in process)")
	pgDSN := flag.String("postgres", os.Getenv("GIRDER_BENCH_POSTGRES"), "PostgreSQL DSN for the replica rows")
	flag.Parse()
	if err := flag.Set("test.benchtime", *benchtime); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -benchtime:", err)
		os.Exit(2)
	}

	env := &Env{RedisAddr: *redisAddr, PostgresDSN: *pgDSN}
	if env.RedisAddr == "" {
		addr, stop, err := startMiniredis()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: miniredis:", err)
			os.Exit(1)
		}
		defer stop()
		env.RedisAddr = addr
	}

	var want []string
	if *only != "" {
		want = strings.Split(*only, ",")
	}
	var tw *tabwriter.Writer
	if !*asJSON {
		tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "package\top\tgirder ns/op\tallocs\tpeer\tpeer ns/op\tallocs\tratio\t")
	}
	enc := json.NewEncoder(os.Stdout)
	for _, suite := range suites {
		for _, row := range suite(env) {
			if want != nil && !slices.Contains(want, row.Package) {
				continue
			}
			res := Result{Package: row.Package, Op: row.Op, Peer: row.Peer}
			m := measurePair(row.Girder, row.PeerFn, *rounds)
			res.GirderNs, res.GirderAllocs = m[0].ns, m[0].allocs
			if row.PeerFn != nil {
				res.PeerNs, res.PeerAllocs = m[1].ns, m[1].allocs
				if res.GirderNs > 0 {
					res.Ratio = res.PeerNs / res.GirderNs
				}
			}
			if *asJSON {
				enc.Encode(res)
				continue
			}
			peerNs, peerAllocs, ratio := "", "", ""
			if row.PeerFn != nil {
				peerNs = fmt.Sprintf("%.1f", res.PeerNs)
				peerAllocs = fmt.Sprint(res.PeerAllocs)
				ratio = fmt.Sprintf("%.2fx", res.Ratio)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%d\t%s\t%s\t%s\t%s\t\n", res.Package, res.Op, res.GirderNs, res.GirderAllocs, res.Peer, peerNs, peerAllocs, ratio)
		}
	}
	if tw != nil {
		tw.Flush()
	}
}
