package cacheprom_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreHasNoPrometheus checks what the package doc promises: the packages that this one
// instruments, cache and cache/writebehind, do not depend on client_golang.
func TestCoreHasNoPrometheus(t *testing.T) {
	for _, pkg := range []string{"github.com/girder-go/girder/cache", "github.com/girder-go/girder/cache/writebehind"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), pkg+"\n") {
			t.Fatalf("go list did not list %s:\n%s", pkg, out)
		}
		for dep := range strings.Lines(string(out)) {
			if strings.HasPrefix(dep, "github.com/prometheus/") {
				t.Errorf("%s depends on %s", pkg, strings.TrimSpace(dep))
			}
		}
	}
}
