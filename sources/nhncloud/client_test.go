package nhncloud

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "nhncloud", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePageRecorded(t *testing.T) {
	cases := []struct {
		file                  string
		items                 int
		hasTotals, hasLast    bool
		totalPages, totalElem int64
		last                  bool
		uuid                  bool
	}{
		{"doc_v1_page.json", 1, true, true, 1, 1, true, false},
		{"doc_v2_page.json", 1, false, false, 0, 0, false, true},
		{"sim_v1_page.json", 2, true, true, 2, 3, false, false},
		{"sim_v2_page.json", 2, true, true, 2, 3, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			p, h, err := ParsePage(testdata(t, tc.file))
			if err != nil || !h.Successful() || p == nil {
				t.Fatalf("ParsePage: %v %+v", err, h)
			}
			if len(p.Items) != tc.items || p.HasTotals != tc.hasTotals || p.HasLast != tc.hasLast ||
				p.TotalPages != tc.totalPages || p.TotalElements != tc.totalElem || p.Last != tc.last {
				t.Fatalf("page %+v", p)
			}
			for _, it := range p.Items {
				et, _ := it.GetString("eventTime")
				if _, err := ParseEventTime(et); err != nil {
					t.Fatal(err)
				}
				_, hasUUID := it.GetKey("eventLogUuid")
				if hasUUID != tc.uuid {
					t.Fatalf("eventLogUuid present: %v", hasUUID)
				}
				req, _ := it.GetString("request")
				if _, err := plugins.ParseObject([]byte(req)); err != nil {
					t.Fatalf("request is not a JSON string: %v", err)
				}
			}
		})
	}
}

func TestInterpretClassifies(t *testing.T) {
	c, err := NewClient(ClientOptions{Endpoint: "https://h.example", Version: "v2", AppKey: testAppKey, UserAccessKeyID: testKeyID, SecretAccessKey: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		status  int
		body    string
		retryAf string
		class   ErrorClass
		want    string
	}{
		{"auth v2", 200, string(testdata(t, "error_auth_v2.json")), "", ClassAuth,
			"nhncloud cloudtrail v2.0: authentication failed (HTTP 200, resultCode 40100: Authentication failed): check app_key, user_access_key_id and secret_access_key"},
		{"appkey", 200, string(testdata(t, "error_appkey.json")), "", ClassAuth, "(HTTP 200, resultCode 40102: Invalid appkey)"},
		{"missing headers", 200, `{"header":{"isSuccessful":false,"resultCode":40101,"resultMessage":"headers required"}}`, "", ClassAuth, "resultCode 40101"},
		{"permission", 200, `{"header":{"isSuccessful":false,"resultCode":40300,"resultMessage":"Permission denied"}}`, "", ClassPermission, "permission denied (HTTP 200, resultCode 40300: Permission denied): the user access key needs the CloudTrail:EventLog.List permission"},
		{"bad request", 200, string(testdata(t, "error_bad_request.json")), "", ClassBadRequest, "the API rejected the request (HTTP 200, resultCode 40001: page.limit must be between 1 and 1000)"},
		{"quota 403", 403, string(testdata(t, "error_quota_403.json")), "", ClassQuota, "API quota exhausted (HTTP 403, resultCode 20004: API quota exceeded)"},
		{"quota 403 retry-after", 403, string(testdata(t, "error_quota_403.json")), "7", ClassQuota, "resultCode 20004"},
		{"quota code on 200", 200, `{"header":{"isSuccessful":false,"resultCode":20004,"resultMessage":"quota"}}`, "", ClassQuota, "resultCode 20004"},
		{"transient", 200, string(testdata(t, "error_transient.json")), "", ClassTransient, "temporary failure (HTTP 200, resultCode 50300: Service temporarily unavailable)"},
		{"unknown", 200, string(testdata(t, "error_unknown.json")), "", ClassUnknown, "unexpected answer (HTTP 200, resultCode 99999: Unexpected condition)"},
		{"string code", 200, `{"header":{"isSuccessful":"false","resultCode":"40100","resultMessage":"x"}}`, "", ClassAuth, "resultCode 40100"},
		{"code without flag", 200, `{"header":{"resultCode":50000,"resultMessage":"x"}}`, "", ClassTransient, "resultCode 50000"},
		{"503 html", 503, "<html>busy</html>", "3", ClassTransient, "temporary failure (HTTP 503)"},
		{"502", 502, "", "", ClassTransient, "HTTP 502"},
		{"401 bare", 401, "", "", ClassAuth, "authentication failed (HTTP 401)"},
		{"403 bare", 403, "", "", ClassPermission, "permission denied (HTTP 403)"},
		{"429", 429, "", "", ClassQuota, "HTTP 429"},
		{"404", 404, "<html>not found</html>", "", ClassBadRequest, "no such API path: check endpoint and api_version"},
		{"400", 400, "", "", ClassBadRequest, "HTTP 400"},
		{"302", 302, "", "", ClassBadRequest, "the endpoint redirects"},
		{"418", 418, "", "", ClassBadRequest, "HTTP 418"},
		{"200 not JSON", 200, "<html>", "", ClassMalformed, "malformed answer (HTTP 200): answer is not a CloudTrail page"},
		{"200 no header", 200, `{"page":{"content":[]}}`, "", ClassMalformed, "malformed"},
		{"200 success without page", 200, `{"header":{"isSuccessful":true,"resultCode":0,"resultMessage":"SUCCESS"}}`, "", ClassMalformed, "successful answer without a page"},
		{"200 content not array", 200, `{"header":{"isSuccessful":true,"resultCode":0},"page":{"content":{},"totalPages":1,"totalElements":1}}`, "", ClassMalformed, "page.content is not an array"},
		{"failure with a broken page", 200, `{"header":{"isSuccessful":false,"resultCode":40100,"resultMessage":"Authentication failed"},"page":7}`, "", ClassAuth, "resultCode 40100"},
		{"message echoing the secret", 200, `{"header":{"isSuccessful":false,"resultCode":40100,"resultMessage":"bad secret ` + testSecret + ` for ` + testAppKey + `"}}`, "", ClassAuth, "bad secret [REDACTED] for [REDACTED]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
			if tc.retryAf != "" {
				resp.Header.Set("Retry-After", tc.retryAf)
			}
			_, err := c.Interpret(resp, []byte(tc.body))
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("not an APIError: %v", err)
			}
			if ae.Class != tc.class {
				t.Errorf("class %v, want %v", ae.Class, tc.class)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q lacks %q", err, tc.want)
			}
			if tc.retryAf != "" && ae.RetryAfter.String() != tc.retryAf+"s" {
				t.Errorf("RetryAfter %v", ae.RetryAfter)
			}
			assertNoSecrets(t, "error", err.Error())
		})
	}
}

func TestClientSearchAndNewRequest(t *testing.T) {
	env := newTestEnv(t, SimulatorOptions{Seed: 9})
	now := time.Now()
	env.sim.Generate(30, now.Add(-time.Hour), now.Add(-time.Minute))
	for _, v := range []string{"v1", "v2", "v1.0", "v2.0"} {
		c, err := NewClient(ClientOptions{Endpoint: env.srv.URL + "/", Version: v, AppKey: testAppKey, UserAccessKeyID: testKeyID, SecretAccessKey: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		q := &SearchRequest{StartDate: FormatRequestTime(now.Add(-2 * time.Hour)), EndDate: FormatRequestTime(now), Page: PageConditions{SortBy: SortTimeAsc, Limit: 20}}
		p, err := c.Search(context.Background(), q)
		if err != nil || len(p.Items) != 20 || p.TotalElements != 30 || p.Last {
			t.Fatalf("%s: %v %+v", v, err, p)
		}
		if strings.Contains(c.URL(), testAppKey) || !strings.Contains(c.URL(), "/appkeys/[REDACTED]/events/search") {
			t.Fatalf("URL() %s", c.URL())
		}
	}
	reqs := env.sim.Requests()
	for _, r := range reqs {
		raw := string(r.RawBody)
		if strings.Contains(raw, "eventId") || strings.Contains(raw, "member") || strings.Contains(raw, "idNo") {
			t.Fatalf("empty filters sent: %s", raw)
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("content type %q", r.Header.Get("Content-Type"))
		}
	}
	if reqs[0].Header.Get(HeaderAuthID) != "" || reqs[1].Header.Get(HeaderAuthID) != testKeyID || reqs[1].Header.Get(HeaderAuthSecret) != testSecret {
		t.Fatal("v2 headers wrong")
	}
	if _, err := NewClient(ClientOptions{Endpoint: "ftp://x", Version: "v1", AppKey: "k"}); err == nil {
		t.Fatal("ftp endpoint accepted")
	}
	if _, err := NewClient(ClientOptions{Endpoint: "https://x", Version: "v9", AppKey: "k"}); err == nil {
		t.Fatal("v9 accepted")
	}
}

func TestClientTransportErrorsAreScrubbed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		_ = conn.Close() // the connection dies mid-request
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, endpoint := range []string{srv.URL, closedURL} {
		c, _ := NewClient(ClientOptions{Endpoint: endpoint, Version: "v2", AppKey: testAppKey, UserAccessKeyID: testKeyID, SecretAccessKey: testSecret, Timeout: 2 * time.Second})
		_, err := c.Search(context.Background(), &SearchRequest{Page: PageConditions{Limit: 1}})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Class != ClassTransient {
			t.Fatalf("%v", err)
		}
		if !strings.Contains(err.Error(), "/appkeys/[REDACTED]/") {
			t.Fatalf("message does not name the redacted URL: %v", err)
		}
		assertNoSecrets(t, "transport error", err.Error())
		for e := error(err); e != nil; e = errors.Unwrap(e) {
			assertNoSecrets(t, "wrapped error", e.Error())
		}
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	hit := false
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, other.URL, http.StatusPermanentRedirect)
	}))
	defer srv.Close()
	c, _ := NewClient(ClientOptions{Endpoint: srv.URL, Version: "v2", AppKey: testAppKey, UserAccessKeyID: testKeyID, SecretAccessKey: testSecret})
	_, err := c.Search(context.Background(), &SearchRequest{Page: PageConditions{Limit: 1}})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Class != ClassBadRequest || hit {
		t.Fatalf("redirect: %v (followed: %v)", err, hit)
	}
}

func TestParseEventTime(t *testing.T) {
	want := time.Date(2019, 9, 4, 10, 31, 49, 348_000_000, time.UTC)
	cases := []struct {
		in string
		ok bool
	}{
		{"2019-09-04T10:31:49.348+0000", true},
		{"2019-09-04T19:31:49.348+0900", true},
		{"2019-09-04T10:31:49.348Z", true},
		{"2019-09-04T19:31:49.348+09:00", true},
		{"2019-09-04T10:31:49.348000+0000", true},
		{"2019-09-04T10:31:49.3+0000", false}, // a different instant: parsed, but not equal
		{"2019-09-04 10:31:49.348+0000", false},
		{"2019-09-04T10:31:49.348", false},
		{"2019/09/04 10:31:49", false},
		{"1567593109348", false},
		{"", false},
		{"not-a-time", false},
	}
	for _, tc := range cases {
		got, err := ParseEventTime(tc.in)
		if (err == nil && got.Equal(want)) != tc.ok {
			t.Errorf("%q: %v %v", tc.in, got, err)
		}
	}
	if got, _ := ParseEventTime("2019-09-04T10:31:49.348+0000"); got.UnixMilli() != want.UnixMilli() {
		t.Fatal("milliseconds lost")
	}
	if s := FormatEventTime(want); s != "2019-09-04T10:31:49.348+0000" {
		t.Fatalf("FormatEventTime %s", s)
	}
	if s := FormatRequestTime(want.In(time.FixedZone("KST", 9*3600))); s != "2019-09-04T10:31:49.348Z" {
		t.Fatalf("FormatRequestTime %s", s)
	}
}

func TestFingerprint(t *testing.T) {
	a, _ := plugins.ParseObject([]byte(`{"eventTime":"2019-09-04T10:31:49.348+0000","userId":"a@b.c","n":1.50,"eventTarget":{"targetMembers":[{"name":"x","idNo":"1"}]},"z":null}`))
	b, _ := plugins.ParseObject([]byte(`{ "z":null, "eventTarget":{"targetMembers":[{"idNo":"1","name":"x"}]}, "n":1.50, "userId":"a@b.c","eventTime":"2019-09-04T10:31:49.348+0000"}`))
	c, _ := plugins.ParseObject([]byte(`{"eventTime":"2019-09-04T10:31:49.349+0000","userId":"a@b.c","n":1.50,"eventTarget":{"targetMembers":[{"name":"x","idNo":"1"}]},"z":null}`))
	if Fingerprint(a) != Fingerprint(b) {
		t.Fatal("key order changes the fingerprint")
	}
	if Fingerprint(a) == Fingerprint(c) {
		t.Fatal("different items share a fingerprint")
	}
	if len(Fingerprint(a)) != 64 {
		t.Fatalf("fingerprint %q is not hex SHA-256", Fingerprint(a))
	}
	if EventID(a) != Fingerprint(a) {
		t.Fatal("EventID without eventLogUuid is not the fingerprint")
	}
	a.SetKey("eventLogUuid", "17278c08-8338-4fd9-9693-931290adb9ec")
	if EventID(a) != "17278c08-8338-4fd9-9693-931290adb9ec" {
		t.Fatal("EventID ignores eventLogUuid")
	}
	a.SetKey("eventLogUuid", "")
	if EventID(a) != Fingerprint(a) {
		t.Fatal("an empty eventLogUuid is used as id")
	}
	// The recorded v1 page: the same bytes give the same ids.
	p1, _, _ := ParsePage(testdata(t, "sim_v1_page.json"))
	p2, _, _ := ParsePage(testdata(t, "sim_v1_page.json"))
	for i := range p1.Items {
		if EventID(p1.Items[i]) != EventID(p2.Items[i]) {
			t.Fatal("re-read item has another id")
		}
	}
	if EventID(p1.Items[0]) == EventID(p1.Items[1]) {
		t.Fatal("two events share an id")
	}
}
