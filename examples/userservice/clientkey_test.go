package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRateLimitKey(t *testing.T) {
	trusted, err := parseTrustedProxies("10.0.0.0/8, 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	key, err := newRateLimitKey(trusted)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ remote, xff, apiKey, want string }{
		{"203.0.113.7:1", "198.51.100.1", "", "ip:203.0.113.7"},
		{"10.0.0.5:1", "198.51.100.1, 203.0.113.7", "", "ip:203.0.113.7"},
		{"192.0.2.7:1", "198.51.100.1, 203.0.113.7, 10.1.1.1", "", "ip:203.0.113.7"},
		{"10.0.0.5:1", "", "k1", "key:k1"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if tt.apiKey != "" {
			r.Header.Set(apiKeyHeader, tt.apiKey)
		}
		if got, err := key(r); err != nil || got != tt.want {
			t.Errorf("%+v: got %q, %v", tt, got, err)
		}
	}
	if _, err := parseTrustedProxies("10.0.0.0/8,nope"); err == nil {
		t.Error("bad list accepted")
	}
}
