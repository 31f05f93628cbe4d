package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type detailedReady struct{ fakeReady }

func (detailedReady) Details() map[string]any {
	return map[string]any{"cluster": map[string]any{"sources": []string{"ncp"}, "generation": 7}, "ready": "must not override"}
}

// /readyz carries a Detailer's facts (cluster membership) beside readiness,
// without letting them replace "ready" or "problems".
func TestReadyzDetails(t *testing.T) {
	for _, ok := range []bool{true, false} {
		srv := httptest.NewServer(Handler(prometheus.NewRegistry(), detailedReady{fakeReady{ok: ok, problems: map[string]string{"x": "down"}}}))
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Ready   bool `json:"ready"`
			Cluster struct {
				Sources    []string `json:"sources"`
				Generation int      `json:"generation"`
			} `json:"cluster"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		srv.Close()
		if err != nil || body.Ready != ok || len(body.Cluster.Sources) != 1 || body.Cluster.Generation != 7 {
			t.Fatalf("ok=%v: %+v %v", ok, body, err)
		}
	}
}
