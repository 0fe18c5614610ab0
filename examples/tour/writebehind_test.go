package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestWritebehindChapter(t *testing.T) {
	var out bytes.Buffer
	if err := writebehindTour(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"[user:1=visits=100 user:2=new] (1 round trips)",
		"Close reports 3 writes not applied; 3 stay pending",
		"[order:1=paid order:2=paid order:3=paid]",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}
