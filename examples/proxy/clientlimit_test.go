package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClientLimitIgnoresForgedForwardedFor(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h, closeLimit, err := clientLimit(ok, 1, "10.0.0.0/8", nil) // burst 2
	if err != nil {
		t.Fatal(err)
	}
	defer closeLimit()
	codes := map[int]int{}
	for i := range 20 {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.0.0.5:1234" // the load balancer in front
		r.Header.Set("X-Forwarded-For", "198.51.100."+string(rune('0'+i%10))+", 203.0.113.7")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		codes[rec.Code]++
	}
	if codes[http.StatusNoContent] != 2 || codes[http.StatusTooManyRequests] != 18 {
		t.Fatalf("codes %v, want 2×204 and 18×429: one client behind forged entries", codes)
	}
	if _, _, err := clientLimit(ok, 1, "nonsense", nil); err == nil {
		t.Fatal("bad -trusted-proxies accepted")
	}
}
