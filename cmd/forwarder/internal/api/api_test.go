package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeReady struct {
	ok       bool
	problems map[string]string
}

func (f fakeReady) Ready() (bool, map[string]string) { return f.ok, f.problems }

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "h"})
	reg.MustRegister(c)
	c.Add(3)
	tests := []struct {
		path  string
		ready fakeReady
		code  int
		body  string
	}{
		{"/healthz", fakeReady{}, 200, `"status":"ok"`},
		{"/readyz", fakeReady{ok: true}, 200, `{"ready":true}`},
		{"/readyz", fakeReady{problems: map[string]string{"kafka": "no broker reachable"}}, 503, `"kafka":"no broker reachable"`},
		{"/metrics", fakeReady{}, 200, "test_total 3"},
		{"/nope", fakeReady{}, 404, ""},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(Handler(reg, tt.ready))
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.body) {
			t.Errorf("%s: %d %s", tt.path, resp.StatusCode, b)
		}
	}
}
