package ncloud

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/internal/httppoll"
)

var update = flag.Bool("update", false, "rewrite golden files")

const testdata = "../../testdata/ncloud"

func TestSignKnownAnswers(t *testing.T) {
	// Expected values computed independently (Python hmac/hashlib/base64).
	cases := []struct {
		method, uri string
		ts          int64
		ak, sk      string
		want        string
	}{
		{"POST", "/api/v1/activities", 1728529785024, "ncp_iam_BPAMKR1Exmpl", "ncp_iam_BPKMKR0Secret", "5M7bHfJakv7wNQGMOCLQoHncWeeK/ciuWpg8MC/Hi9k="},
		{"POST", "/api/v1/activities?nrn=x%3Ay", 1700000000000, "AK", "SK", "e+XZQ0iQwDLX6NdnPbA489zp3JVEZJQfDAa2sdMrjfI="},
		{"GET", "/photos/puppy.jpg?query1=&query2", 1505290625682, "202AB0FE6F6F9F2B3F1F", "secret", "p8SXJDUshaRR7DKgLqD0ntGj5mrO1gf+FoVRShY5Ues="},
	}
	for _, c := range cases {
		if got := Sign(c.method, c.uri, c.ts, c.ak, c.sk); got != c.want {
			t.Errorf("Sign(%s %s) = %s, want %s", c.method, c.uri, got, c.want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, "https://cloudactivitytracer.apigw.ntruss.com/api/v1/activities", nil)
	SignRequest(req, 1728529785024, "ncp_iam_BPAMKR1Exmpl", "ncp_iam_BPKMKR0Secret")
	if req.Header.Get(HeaderTimestamp) != "1728529785024" || req.Header.Get(HeaderAccessKey) != "ncp_iam_BPAMKR1Exmpl" ||
		req.Header.Get(HeaderSignature) != cases[0].want {
		t.Fatalf("SignRequest headers: %v", req.Header)
	}
}

// goldenEvent is what the golden file records of each parsed event.
type goldenEvent struct {
	ID      string          `json:"id"`
	Time    string          `json:"time"`
	Source  string          `json:"source"`
	Dataset string          `json:"dataset"`
	Item    json.RawMessage `json:"item"`
}

func TestGoldenDocExamplePage(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(testdata, "getactivitylist-example.json"))
	if err != nil {
		t.Fatal(err)
	}
	pg, err := ParsePage(body)
	if err != nil {
		t.Fatal(err)
	}
	if pg.PageIndex != 0 || pg.PageSize != 4 || pg.ItemCount != 3 || !pg.HasMore || len(pg.Items) != 3 {
		t.Fatalf("page header: %+v", pg)
	}
	received := time.Date(2024, 10, 10, 3, 0, 0, 0, time.UTC)
	var got []goldenEvent
	for _, it := range pg.Items {
		ev := ItemEvent(it, "ncp", time.Time{}, received)
		if ev.Meta.Received != received {
			t.Fatal("Received not set")
		}
		got = append(got, goldenEvent{ID: ev.Meta.ID, Time: ev.Meta.Time.Format(time.RFC3339Nano),
			Source: ev.Meta.Source, Dataset: ev.Meta.Dataset, Item: ev.Fields.AppendJSON(nil)})
	}
	out, _ := json.MarshalIndent(got, "", "  ")
	out = append(out, '\n')
	golden := filepath.Join(testdata, "getactivitylist-example.golden.json")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to create it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("parsed events differ from %s (go test -run Golden -update rewrites it):\n%s", golden, out)
	}
	// The raw item is kept as the API sent it: same keys, same order, same values.
	var orig struct {
		Items []json.RawMessage `json:"items"`
	}
	_ = json.Unmarshal(body, &orig)
	for i := range orig.Items {
		var a, b bytes.Buffer
		_ = json.Compact(&a, orig.Items[i])
		_ = json.Compact(&b, got[i].Item)
		if a.String() != b.String() {
			t.Errorf("item %d changed:\n%s\n%s", i, a.String(), b.String())
		}
	}
	if got[0].ID != "67074579e2a352720c5736d1" || got[0].Time != "2024-10-10T03:09:45.024Z" {
		t.Fatalf("first event %s at %s", got[0].ID, got[0].Time)
	}
}

func TestParsePageMalformed(t *testing.T) {
	cases := map[string]string{
		"html":          `<html>502 Bad Gateway</html>`,
		"truncated":     `{"items":[{"historyId":"`,
		"no items":      `{"pageIndex":0,"hasMore":false}`,
		"items object":  `{"items":{}}`,
		"item a string": `{"items":["x"]}`,
		"empty":         ``,
	}
	for name, body := range cases {
		_, err := ParsePage([]byte(body))
		if !httppoll.IsMalformed(err) {
			t.Errorf("%s: err %v, want Malformed", name, err)
		}
	}
	// Strings for numbers and hasMore are tolerated; an empty page is fine.
	pg, err := ParsePage([]byte(`{"pageIndex":"2","pageSize":"4","hasMore":"true","items":[]}`))
	if err != nil || pg.PageIndex != 2 || pg.PageSize != 4 || !pg.HasMore {
		t.Fatalf("%+v %v", pg, err)
	}
}

func TestGatewayErrors(t *testing.T) {
	mk := func(status int, file string) (*http.Response, []byte) {
		body, err := os.ReadFile(filepath.Join(testdata, file))
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set(HeaderTraceID, "abc123trace")
		h.Set("Retry-After", "7")
		return &http.Response{StatusCode: status, Header: h}, body
	}
	now := time.Now()
	resp, body := mk(401, "error-401-authentication-failed.json")
	e := classify(resp, body, now)
	if e.Kind != httppoll.Auth {
		t.Fatalf("401: kind %s", e.Kind)
	}
	for _, want := range []string{"authentication failed", "HTTP 401", `NCP error 200 "Authentication Failed"`, "Invalid authentication information.", "x-ncp-trace-id abc123trace"} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("401 error %q lacks %q", e.Error(), want)
		}
	}
	resp, body = mk(401, "error-401-permission-denied-numeric-code.json")
	if e := classify(resp, body, now); e.Kind != httppoll.Auth || !strings.Contains(e.Error(), `permission denied: HTTP 401, NCP error 210 "Permission Denied"`) {
		t.Fatalf("210 (numeric code): %s %v", e.Kind, e)
	}
	resp, body = mk(429, "error-429-rate-limited.json")
	if e := classify(resp, body, now); e.Kind != httppoll.RateLimited || e.RetryAfter != 7*time.Second {
		t.Fatalf("429: %s retry after %s", e.Kind, e.RetryAfter)
	}
	if e := classify(&http.Response{StatusCode: 502, Header: http.Header{}}, []byte("<html>bad gateway</html>"), now); e.Kind != httppoll.Transient || !strings.Contains(e.Error(), "HTTP 502") {
		t.Fatalf("502 html: %s %v", e.Kind, e)
	}
	if e := classify(&http.Response{StatusCode: 400, Header: http.Header{}}, []byte(`{"error":{"errorCode":"100","message":"Bad Request Exception","details":"pageSize must be 100 or less"}}`), now); e.Kind != httppoll.Fatal {
		t.Fatalf("400: %s", e.Kind)
	}
}

func TestItemEventFallbacks(t *testing.T) {
	o, _ := plugins.ParseObject([]byte(`{"eventTime":"1728529785024","productName":"Server"}`))
	fallback := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := ItemEvent(o, "ncp", fallback, fallback)
	if len(ev.Meta.ID) != 64 || ev.Meta.ID != plugins.Fingerprint(o) {
		t.Fatalf("id without historyId: %q, want the fingerprint", ev.Meta.ID)
	}
	if ev.Meta.Time.UnixMilli() != 1728529785024 {
		t.Fatalf("string eventTime not read: %s", ev.Meta.Time)
	}
	o2, _ := plugins.ParseObject([]byte(`{"historyId":"x"}`))
	if ev := ItemEvent(o2, "ncp", fallback, fallback); !ev.Meta.Time.Equal(fallback) || ev.Meta.ID != "x" {
		t.Fatalf("no eventTime: %+v", ev.Meta)
	}
}

func FuzzParsePage(f *testing.F) {
	body, _ := os.ReadFile(filepath.Join(testdata, "getactivitylist-example.json"))
	f.Add(body)
	f.Add([]byte(`{"items":[],"hasMore":false}`))
	f.Add([]byte(`{"items":[{"historyId":1,"eventTime":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pg, err := ParsePage(data)
		if err != nil {
			if !httppoll.IsMalformed(err) {
				t.Fatalf("non-malformed error %v", err)
			}
			return
		}
		for _, it := range pg.Items {
			ev := ItemEvent(it, "s", time.Unix(0, 0), time.Unix(0, 0))
			if ev.Meta.ID == "" {
				t.Fatal("event without id")
			}
		}
	})
}

func TestREADMEShowsSample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(sample)+"```") {
		t.Fatal("README.md's yaml block differs from sample.yaml; copy the sample into the README")
	}
}
