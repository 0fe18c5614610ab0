package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestAdaptiveChapter checks what the adaptive chapter claims: during the slowdown the limiter
// keeps more than twice as many calls in time as no limit, by shedding and lowering its limit;
// and the retry budget holds an outage to 1.30 attempts per request where plain retries make 3.
func TestAdaptiveChapter(t *testing.T) {
	var out bytes.Buffer
	if err := tourAdaptive(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	row := regexp.MustCompile(`(?m)^  (normal|10× slower)\s+no limit:\s+(\d+) in time\s+adaptive:\s+(\d+) in time,\s+(\d+) shed, limit (\d+)$`)
	rows := row.FindAllStringSubmatch(text, -1)
	if len(rows) != 2 {
		t.Fatalf("want 2 rows of the slowdown in\n%s", text)
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	normal, slow := rows[0], rows[1]
	if none, adaptive := n(slow[2]), n(slow[3]); adaptive <= 2*none {
		t.Errorf("slowdown: adaptive kept %d calls in time, no limit %d: want more than twice\n%s", adaptive, none, text)
	}
	if n(slow[4]) == 0 {
		t.Errorf("slowdown: the limiter shed nothing\n%s", text)
	}
	if n(slow[5]) >= n(normal[5]) {
		t.Errorf("the limit did not come down in the slowdown: %s then %s\n%s", normal[5], slow[5], text)
	}
	for _, want := range []string{
		"a fails   plain retries 1.50   retry budget 1.30 (299 retries sent, 134 refused)",
		"all fail  plain retries 3.00   retry budget 1.30 (300 retries sent, 945 refused)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}
