package tracingprom_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreHasNoPrometheus checks what the package doc promises: the core package that this one
// instruments does not depend on client_golang.
func TestCoreHasNoPrometheus(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/girder-go/girder/tracing").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "github.com/girder-go/girder/tracing\n") {
		t.Fatalf("go list did not list the package:\n%s", out)
	}
	for dep := range strings.Lines(string(out)) {
		if strings.HasPrefix(dep, "github.com/prometheus/") {
			t.Errorf("tracing depends on %s", strings.TrimSpace(dep))
		}
	}
}
