package cacheprom

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/writebehind"
	"github.com/girder-go/girder/internal/promopts"
)

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// Buckets are the upper bounds, in seconds, of the load-duration histograms, in increasing
	// order; nil means prometheus.DefBuckets (5 ms to 10 s).
	Buckets []float64
	// ConstLabels are added to every series. Their names must not be labels of the collector's
	// own (cache, level, result, kind, queue).
	ConstLabels prometheus.Labels
}

// Validate reports every problem with o, or nil; New calls it.
func (o *Options) Validate() error {
	return errors.Join(promopts.Check("cacheprom", o.Buckets, o.ConstLabels, "cache", "level", "result", "kind", "queue", "le")...)
}

// Source is what Watch reads: a *cache.Cache of any key and value types.
type Source interface {
	Stats() cache.Stats
}

// QueueSource is what WatchQueue reads: a *writebehind.Queue of any key and value types.
type QueueSource interface {
	Len() int
}

// Sizer is what WatchEntries reads: a *cache.Memory, or any store that counts its entries.
type Sizer interface {
	Len() int
}

// levelKey names one level of one cache.
type levelKey struct{ cache, level string }

// Collector is a prometheus.Collector for caches and write-behind queues. Make one with New,
// feed it with Watch, WatchQueue, Hooks and WriteBehindHooks, and register it once.
type Collector struct {
	load      *prometheus.HistogramVec
	batchLoad *prometheus.HistogramVec
	errs      *prometheus.CounterVec
	flushes   *prometheus.CounterVec
	flushed   *prometheus.CounterVec
	descs

	mu     sync.Mutex
	caches map[string]Source
	queues map[string]QueueSource
	sizes  map[levelKey]Sizer
}

// descs are the descriptions of the metrics Collect reads from the watched caches and queues.
type descs struct {
	hits, misses, levelErrors                             *prometheus.Desc
	loads, loadErrors, notFound, coalesced                *prometheus.Desc
	refreshes, refreshesSkipped, invalidations, queueKeys *prometheus.Desc
	entries                                               *prometheus.Desc
}

func newDescs(constLabels prometheus.Labels) descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, constLabels)
	}
	return descs{
		hits:             d("girder_cache_hits_total", "Reads a level of the cache answered (a remembered absence counts).", "cache", "level"),
		misses:           d("girder_cache_misses_total", "Reads a level of the cache did not hold.", "cache", "level"),
		levelErrors:      d("girder_cache_level_errors_total", "Failed reads and writes of a level of the cache.", "cache", "level"),
		loads:            d("girder_cache_loads_total", "Keys the cache's Loader or BatchLoader was asked for.", "cache"),
		loadErrors:       d("girder_cache_load_errors_total", "Loads that failed other than with not found.", "cache"),
		notFound:         d("girder_cache_loads_not_found_total", "Loads that answered not found.", "cache"),
		coalesced:        d("girder_cache_coalesced_reads_total", "Reads that waited for a load another read had started.", "cache"),
		refreshes:        d("girder_cache_refreshes_total", "Background refreshes started.", "cache"),
		refreshesSkipped: d("girder_cache_refreshes_skipped_total", "Background refreshes skipped because every slot was taken.", "cache"),
		invalidations:    d("girder_cache_invalidations_total", "Keys dropped because another instance published them.", "cache"),
		entries:          d("girder_cache_entries", "Entries a level of the cache holds (the store's estimate).", "cache", "level"),
		queueKeys:        d("girder_cache_writebehind_queued_keys", "Keys the write-behind queue holds, queued or being written.", "queue"),
	}
}

// Load results, the values of the result label of girder_cache_load_duration_seconds.
const (
	resSuccess  = "success"
	resNotFound = "not_found"
	resError    = "error"
)

// Kinds of absorbed errors, the values of the kind label of girder_cache_absorbed_errors_total.
var errorKinds = [...]string{"level", "refresh", "other"}

// New returns a Collector, or every problem with opts.
func New(opts Options) (*Collector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	buckets := opts.Buckets
	if buckets == nil {
		buckets = prometheus.DefBuckets
	}
	return &Collector{
		load: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "girder_cache_load_duration_seconds",
			Help:        "Duration of the calls of the cache's Loader, by result (success, not_found, error).",
			Buckets:     slices.Clone(buckets),
			ConstLabels: opts.ConstLabels,
		}, []string{"cache", "result"}),
		batchLoad: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "girder_cache_batch_load_duration_seconds",
			Help:        "Duration of the calls of the cache's BatchLoader, by result (success, error).",
			Buckets:     slices.Clone(buckets),
			ConstLabels: opts.ConstLabels,
		}, []string{"cache", "result"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_cache_absorbed_errors_total",
			Help:        "Failures the cache absorbed rather than returned, by kind (level, refresh, other).",
			ConstLabels: opts.ConstLabels,
		}, []string{"cache", "kind"}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_cache_writebehind_flushes_total",
			Help:        "Calls of the store of record by the write-behind queue, by result (success, error).",
			ConstLabels: opts.ConstLabels,
		}, []string{"queue", "result"}),
		flushed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_cache_writebehind_writes_total",
			Help:        "Writes the write-behind queue passed to the store of record, by result (success, error); a retried write counts at each attempt.",
			ConstLabels: opts.ConstLabels,
		}, []string{"queue", "result"}),
		descs:  newDescs(opts.ConstLabels),
		caches: map[string]Source{},
		queues: map[string]QueueSource{},
		sizes:  map[levelKey]Sizer{},
	}, nil
}

// Hooks returns cache hooks that feed the load histograms and the absorbed-error counter of the
// cache called name; set them in that cache's Options.Hooks. It is a function rather than a
// method because Go methods take no type parameters. To keep hooks of your own as well, call
// both from one function. OnHit and OnMiss stay nil: hits and misses are read from Stats.
func Hooks[K comparable](c *Collector, name string) cache.Hooks[K] {
	loadOK := c.load.WithLabelValues(name, resSuccess)
	loadNotFound := c.load.WithLabelValues(name, resNotFound)
	loadErr := c.load.WithLabelValues(name, resError)
	batchOK := c.batchLoad.WithLabelValues(name, resSuccess)
	batchErr := c.batchLoad.WithLabelValues(name, resError)
	var kinds [len(errorKinds)]prometheus.Counter
	for i, k := range errorKinds {
		kinds[i] = c.errs.WithLabelValues(name, k)
	}
	return cache.Hooks[K]{
		OnLoad: func(_ context.Context, info cache.LoadInfo[K]) {
			switch {
			case info.Err == nil:
				loadOK.Observe(info.Took.Seconds())
			case errors.Is(info.Err, cache.ErrNotFound):
				loadNotFound.Observe(info.Took.Seconds())
			default:
				loadErr.Observe(info.Took.Seconds())
			}
		},
		OnBatchLoad: func(_ context.Context, info cache.BatchLoadInfo[K]) {
			if info.Err == nil {
				batchOK.Observe(info.Took.Seconds())
			} else {
				batchErr.Observe(info.Took.Seconds())
			}
		},
		OnError: func(_ context.Context, info cache.ErrorInfo[K]) {
			var le *cache.LevelError
			var re *cache.RefreshError
			switch {
			case errors.As(info.Err, &le):
				kinds[0].Inc()
			case errors.As(info.Err, &re):
				kinds[1].Inc()
			default:
				kinds[2].Inc()
			}
		},
	}
}

// WriteBehindHooks returns write-behind hooks that count the flushes of the queue called name
// and the writes they carried; set them in that queue's Options.Hooks.
func (c *Collector) WriteBehindHooks(name string) writebehind.Hooks {
	okCalls := c.flushes.WithLabelValues(name, resSuccess)
	errCalls := c.flushes.WithLabelValues(name, resError)
	okWrites := c.flushed.WithLabelValues(name, resSuccess)
	errWrites := c.flushed.WithLabelValues(name, resError)
	return writebehind.Hooks{
		OnFlush: func(info writebehind.FlushInfo) {
			if info.Err == nil {
				okCalls.Inc()
				okWrites.Add(float64(info.Writes))
			} else {
				errCalls.Inc()
				errWrites.Add(float64(info.Writes))
			}
		},
	}
}

// Watch adds a cache (a *cache.Cache), whose Stats are read at each scrape under the label
// cache=name. It fails when name is empty, s is nil, or name is already watched.
func (c *Collector) Watch(name string, s Source) error {
	return watch(c, "Watch", name, name, s, c.caches)
}

// WatchQueue adds a write-behind queue (a *writebehind.Queue), whose length is read at each
// scrape under the label queue=name. It fails like Watch.
func (c *Collector) WatchQueue(name string, q QueueSource) error {
	return watch(c, "WatchQueue", name, name, q, c.queues)
}

// WatchEntries adds a level's store (a *cache.Memory), whose Len is read at each scrape under
// the labels cache=name, level=level; the Cache does not expose its levels, so they are watched
// one by one. It fails when name or level is empty, s is nil, or the level is already watched.
func (c *Collector) WatchEntries(name, level string, s Sizer) error {
	if level == "" {
		return fmt.Errorf("cacheprom: WatchEntries %q: empty level", name)
	}
	return watch(c, "WatchEntries", name, levelKey{name, level}, s, c.sizes)
}

func watch[N comparable, T any](c *Collector, method, name string, key N, v T, m map[N]T) error {
	switch {
	case name == "":
		return fmt.Errorf("cacheprom: %s: empty name", method)
	case isNil(v):
		return fmt.Errorf("cacheprom: %s %q: nil source", method, name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := m[key]; ok {
		return fmt.Errorf("cacheprom: %s %q: already watched", method, name)
	}
	m[key] = v
	return nil
}

// isNil reports whether v is nil or a nil pointer in an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Pointer && r.IsNil()
}

// Unwatch removes the cache, the queue and the levels watched as name; their series read at scrape time
// disappear from the next scrape. The histograms and counters their hooks fed stay.
func (c *Collector) Unwatch(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.caches, name)
	delete(c.queues, name)
	for k := range c.sizes {
		if k.cache == name {
			delete(c.sizes, k)
		}
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.all() {
		ch <- d
	}
	c.load.Describe(ch)
	c.batchLoad.Describe(ch)
	c.errs.Describe(ch)
	c.flushes.Describe(ch)
	c.flushed.Describe(ch)
}

func (d *descs) all() []*prometheus.Desc {
	return []*prometheus.Desc{d.hits, d.misses, d.levelErrors, d.loads, d.loadErrors, d.notFound, d.coalesced,
		d.refreshes, d.refreshesSkipped, d.invalidations, d.entries, d.queueKeys}
}

// Collect implements prometheus.Collector: it reads every watched cache's Stats and every
// watched queue's length.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	caches := make(map[string]Source, len(c.caches))
	for name, s := range c.caches {
		caches[name] = s
	}
	queues := make(map[string]QueueSource, len(c.queues))
	for name, q := range c.queues {
		queues[name] = q
	}
	sizes := make(map[levelKey]Sizer, len(c.sizes))
	for k, s := range c.sizes {
		sizes[k] = s
	}
	c.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for name, s := range caches {
		st := s.Stats()
		for _, l := range st.Levels {
			counter(c.hits, l.Hits, name, l.Name)
			counter(c.misses, l.Misses, name, l.Name)
			counter(c.levelErrors, l.Errors, name, l.Name)
		}
		counter(c.loads, st.Loads, name)
		counter(c.loadErrors, st.LoadErrors, name)
		counter(c.notFound, st.NotFound, name)
		counter(c.coalesced, st.Coalesced, name)
		counter(c.refreshes, st.Refreshes, name)
		counter(c.refreshesSkipped, st.RefreshesSkipped, name)
		counter(c.invalidations, st.Invalidations, name)
	}
	for k, s := range sizes {
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Len()), k.cache, k.level)
	}
	for name, q := range queues {
		ch <- prometheus.MustNewConstMetric(c.queueKeys, prometheus.GaugeValue, float64(q.Len()), name)
	}
	c.load.Collect(ch)
	c.batchLoad.Collect(ch)
	c.errs.Collect(ch)
	c.flushes.Collect(ch)
	c.flushed.Collect(ch)
}
