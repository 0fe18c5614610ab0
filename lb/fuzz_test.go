package lb

import (
	"testing"
)

// FuzzConsistentHash checks that any key maps to a usable backend, the same one every time, and
// that taking a backend out moves only the keys it owned.
func FuzzConsistentHash(f *testing.F) {
	for _, k := range []string{"", "alice", "bob", "\x00\xff", "a-much-longer-session-identifier-0123456789"} {
		f.Add(k)
	}
	b, err := New(Options[string]{Policy: ConsistentHash, Backends: backends("abcdefg", 1, 2, 3, 1, 2, 3, 1), PanicThreshold: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	f.Fuzz(func(t *testing.T, key string) {
		l, err := b.PickKey(key)
		if err != nil {
			t.Fatal(err)
		}
		owner := l.Name()
		l.Done(nil, 0)
		again, err := b.PickKey(key)
		if err != nil {
			t.Fatal(err)
		}
		again.Done(nil, 0)
		if again.Name() != owner {
			t.Fatalf("key %q moved from %s to %s", key, owner, again.Name())
		}
		other := "a"
		if owner == "a" {
			other = "b"
		}
		m := b.snap.Load().byName[other]
		without := b.pickHash(&b.snap.Load().primary, key, false, []*state{m.st})
		if without == nil || without.name != owner {
			t.Fatalf("excluding %s moved key %q off %s", other, key, owner)
		}
	})
}
