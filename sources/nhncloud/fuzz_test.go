package nhncloud

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

// FuzzParsePage feeds arbitrary bodies to the page parser and to the whole
// answer interpretation: neither may panic, a parsed page's items must be
// objects whose fingerprint survives a re-encoding, and no answer may make
// an error quote a secret.
func FuzzParsePage(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "nhncloud", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 200)
	}
	f.Add([]byte(`{"header":{"isSuccessful":false,"resultCode":20004,"resultMessage":"quota"}}`), 403)
	f.Add([]byte(`{"header":{"resultCode":"0"},"page":{"content":[{}],"totalPages":1e3,"totalElements":-1,"last":"yes"}}`), 200)
	f.Add([]byte(`<html>503</html>`), 503)
	c, err := NewClient(ClientOptions{Endpoint: "https://h.example", Version: "v2", AppKey: testAppKey, UserAccessKeyID: testKeyID, SecretAccessKey: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		page, hdr, err := ParsePage(body)
		if err == nil && page != nil {
			if hdr == nil {
				t.Fatal("page without header")
			}
			if page.TotalPages < 0 || page.TotalElements < 0 {
				t.Fatalf("negative totals %+v", page)
			}
			for _, it := range page.Items {
				if it == nil {
					t.Fatal("nil item")
				}
				again, perr := plugins.ParseObject(it.AppendJSON(nil))
				if perr != nil {
					t.Fatalf("item does not re-encode: %v", perr)
				}
				if Fingerprint(again) != Fingerprint(it) {
					t.Fatal("fingerprint changed across a re-encoding")
				}
				_ = EventID(it)
			}
		}
		if status < 100 || status > 599 {
			status = 200
		}
		_, ierr := c.Interpret(&http.Response{StatusCode: status, Header: http.Header{}}, body)
		if ierr != nil {
			assertNoSecrets(t, "error", ierr.Error())
		}
	})
}

// FuzzParseEventTime: no panic, and a parsed time formats and parses back.
func FuzzParseEventTime(f *testing.F) {
	for _, s := range []string{"2019-09-04T10:31:49.348+0000", "2019-09-04T10:31:49.348Z", "2019-09-04T19:31:49+09:00", "", "x", "2019-09-04T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseEventTime(s)
		if err != nil {
			return
		}
		if _, err := ParseEventTime(FormatEventTime(tm)); err != nil && tm.Year() >= 0 && tm.Year() <= 9999 {
			t.Fatalf("%q parsed to %v, whose formatting does not parse: %v", s, tm, err)
		}
	})
}
