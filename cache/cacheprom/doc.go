// Package cacheprom exports girder caches and write-behind queues as Prometheus metrics.
//
// One Collector serves every cache and queue of a process, told apart by a "cache" label (and
// "level", the level's Name) or a "queue" label. It has two inputs:
//
//   - Watch registers a cache whose Stats Collect reads at scrape time, and WatchQueue a
//     write-behind queue whose length it reads: nothing is added to reads or writes for these.
//     WatchEntries reads the entry count of a level's store (a Memory), which the Cache does not
//     expose. The hits and misses of a Memory first level are counted only with
//     MemoryOptions.RecordStats; without it they stay at zero.
//   - Hooks returns cache.Hooks that observe each call of the Loader and the BatchLoader in a
//     histogram and count the failures the cache absorbs; set them in cache.Options.Hooks. They
//     leave OnHit and OnMiss nil, so the hit path is unchanged; a load costs one histogram
//     observation. WriteBehindHooks returns writebehind.Hooks that count flushes; set them in
//     writebehind.Options.Hooks. Hooks is a function, not a method, because Go methods take no
//     type parameters.
//
// Wiring one cache and its write-behind queue:
//
//	c, err := cacheprom.New(cacheprom.Options{})
//	q, err := writebehind.New(writebehind.Options[string, User]{Store: db, Hooks: c.WriteBehindHooks("users")})
//	users, err := cache.New(cache.Options[string, User]{Levels: levels, Loader: load, Writer: q,
//		Hooks: cacheprom.Hooks[string](c, "users")})
//	err = c.Watch("users", users)
//	err = c.WatchQueue("users", q)
//	prometheus.MustRegister(c)
//
// # Metrics
//
// Counters and a gauge, read at scrape time from the watched caches and queues:
//
//	girder_cache_hits_total{cache, level}               reads a level answered (a remembered absence counts)
//	girder_cache_misses_total{cache, level}             reads a level did not hold
//	girder_cache_level_errors_total{cache, level}       failed reads and writes of a level
//	girder_cache_loads_total{cache}                     keys asked of the Loader or BatchLoader
//	girder_cache_load_errors_total{cache}               loads that failed (not found excluded)
//	girder_cache_loads_not_found_total{cache}           loads that answered not found
//	girder_cache_coalesced_reads_total{cache}           reads that waited for another read's load
//	girder_cache_refreshes_total{cache}                 background refreshes started
//	girder_cache_refreshes_skipped_total{cache}         refreshes skipped, every slot taken
//	girder_cache_invalidations_total{cache}             keys dropped on another instance's invalidation
//	girder_cache_entries{cache, level}                  entries a level holds (WatchEntries; the store's estimate)
//	girder_cache_writebehind_queued_keys{queue}         keys queued or being written
//
// Histograms and counters, fed by the hooks:
//
//	girder_cache_load_duration_seconds{cache, result}        Loader calls by result (success, not_found, error)
//	girder_cache_batch_load_duration_seconds{cache, result}  BatchLoader calls by result (success, error)
//	girder_cache_absorbed_errors_total{cache, kind}          failures absorbed, by kind (level, refresh, other)
//	girder_cache_writebehind_flushes_total{queue, result}    calls of the store of record (success, error)
//	girder_cache_writebehind_writes_total{queue, result}     writes in those calls; a retried write counts at each attempt
//
// The hit ratio of each level, and of the first level alone, over five minutes:
//
//	sum by (cache, level) (rate(girder_cache_hits_total[5m]))
//	  / (sum by (cache, level) (rate(girder_cache_hits_total[5m])) + sum by (cache, level) (rate(girder_cache_misses_total[5m])))
//
// The 99th percentile of load latency, and the share of flushes that fail:
//
//	histogram_quantile(0.99, sum by (cache, le) (rate(girder_cache_load_duration_seconds_bucket[5m])))
//	sum by (queue) (rate(girder_cache_writebehind_flushes_total{result="error"}[5m]))
//	  / sum by (queue) (rate(girder_cache_writebehind_flushes_total[5m]))
//
// The series fed by hooks exist from the Hooks or WriteBehindHooks call, at zero, so rate and
// increase see the first event. No label grows with traffic: keys are never labels.
//
// # OpenTelemetry
//
// Programs that export OpenTelemetry metrics use this collector through OpenTelemetry's
// Prometheus bridge (go.opentelemetry.io/contrib/bridges/prometheus); girder has no separate
// OpenTelemetry adapters.
//
// A Collector is safe for concurrent use; its hooks may be called from any number of goroutines.
package cacheprom
