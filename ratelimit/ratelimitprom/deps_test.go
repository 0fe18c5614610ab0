package ratelimitprom_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreHasNoPrometheus checks what the package doc promises: ratelimit depends on neither
// client_golang nor go-redis, and redislimit not on client_golang.
func TestCoreHasNoPrometheus(t *testing.T) {
	tests := []struct {
		pkg     string
		without []string
	}{
		{"github.com/girder-go/girder/ratelimit", []string{"github.com/prometheus/", "github.com/redis/"}},
		{"github.com/girder-go/girder/ratelimit/redislimit", []string{"github.com/prometheus/"}},
	}
	for _, tt := range tests {
		out, err := exec.Command("go", "list", "-deps", tt.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), tt.pkg+"\n") {
			t.Fatalf("go list did not list %s:\n%s", tt.pkg, out)
		}
		for dep := range strings.Lines(string(out)) {
			for _, bad := range tt.without {
				if strings.HasPrefix(dep, bad) {
					t.Errorf("%s depends on %s", tt.pkg, strings.TrimSpace(dep))
				}
			}
		}
	}
}
