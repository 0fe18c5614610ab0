package rediscache_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreHasNoGoRedis checks what the package doc promises: package cache, whose Redis-backed
// parts live here and in cache/writebehind, does not depend on go-redis.
func TestCoreHasNoGoRedis(t *testing.T) {
	for _, pkg := range []string{"github.com/girder-go/girder/cache", "github.com/girder-go/girder/cache/cachetest"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), pkg+"\n") {
			t.Fatalf("go list did not list the package:\n%s", out)
		}
		for dep := range strings.Lines(string(out)) {
			if strings.HasPrefix(dep, "github.com/redis/") {
				t.Errorf("%s depends on %s", pkg, strings.TrimSpace(dep))
			}
		}
	}
}
