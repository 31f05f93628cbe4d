package ecs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

// validDoc is a minimal document that passes Check.
const validDoc = `{"@timestamp":"2024-10-10T03:09:45.024Z","event":{"id":"abc","kind":"event","module":"ncloud",` +
	`"dataset":"ncloud.activity_tracer","provider":"Server","action":"Create Server","outcome":"success",` +
	`"category":["configuration"],"type":["creation"],"created":"2026-01-02T03:04:05.678Z"},` +
	`"cloud":{"provider":"ncloud"},"ecs":{"version":"9.1.0"}}`

func TestCheckAcceptsValid(t *testing.T) {
	doc, err := plugins.ParseObject([]byte(validDoc))
	if err != nil {
		t.Fatal(err)
	}
	if v := Check(doc); len(v) > 0 {
		t.Fatalf("valid document rejected: %v", v)
	}
	// Every golden document, read back from its JSON, passes too.
	paths, _ := filepath.Glob(filepath.Join(goldenRoot, "*", "*", "expected.json"))
	if len(paths) == 0 {
		t.Fatal("no goldens")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := plugins.ParseObject(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if v := Check(doc); len(v) > 0 {
			t.Errorf("%s: %v", p, v)
		}
	}
}

// Each mutation breaks the contract in one way; Check must say where.
func TestCheckReportsViolations(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(o *plugins.Object)
		field string
		want  string
	}{
		{"timestamp not UTC", func(o *plugins.Object) { o.Set("@timestamp", "2024-10-10T12:09:45.024+09:00") }, "@timestamp", "RFC 3339 UTC"},
		{"timestamp seconds", func(o *plugins.Object) { o.Set("@timestamp", "2024-10-10T03:09:45Z") }, "@timestamp", "milliseconds"},
		{"timestamp impossible", func(o *plugins.Object) { o.Set("@timestamp", "2024-02-30T03:09:45.000Z") }, "@timestamp", "not a valid date"},
		{"timestamp number", func(o *plugins.Object) { o.Set("@timestamp", plugins.Number("1728529785024")) }, "@timestamp", "must be a string"},
		{"missing id", func(o *plugins.Object) { o.Delete("event.id") }, "event.id", "is required"},
		{"missing action", func(o *plugins.Object) { o.Delete("event.action") }, "event.action", "is required"},
		{"bad category", func(o *plugins.Object) { o.Set("event.category", []any{"login"}) }, "event.category", "not an ECS allowed value"},
		{"bad type", func(o *plugins.Object) { o.Set("event.type", []any{"creation", "modified"}) }, "event.type", "not an ECS allowed value"},
		{"category string", func(o *plugins.Object) { o.Set("event.category", "iam") }, "event.category", "array of strings"},
		{"type missing", func(o *plugins.Object) { o.Delete("event.type") }, "event.type", "is required"},
		{"bad outcome", func(o *plugins.Object) { o.Set("event.outcome", "SUCCESS") }, "event.outcome", "allowed value"},
		{"bad kind", func(o *plugins.Object) { o.Set("event.kind", "signal") }, "event.kind", `must be "event"`},
		{"wrong module", func(o *plugins.Object) { o.Set("event.module", "nhncloud") }, "event.module", `must be "ncloud"`},
		{"unknown dataset", func(o *plugins.Object) { o.Set("event.dataset", "aws.cloudtrail") }, "event.dataset", "must be"},
		{"old ecs", func(o *plugins.Object) { o.Set("ecs.version", "1.12.0") }, "ecs.version", `must be "9.1.0"`},
		{"bad source ip", func(o *plugins.Object) { o.Set("source.ip", "***.***.***.***") }, "source.ip", "not an IP"},
		{"related ip string", func(o *plugins.Object) { o.Set("related.ip", "203.0.113.7") }, "related.ip", "array of strings"},
		{"related ip bad", func(o *plugins.Object) { o.Set("related.ip", []any{"10.00.00.000"}) }, "related.ip", "not an IP"},
		{"related user dup", func(o *plugins.Object) { o.Set("related.user", []any{"a", "a"}) }, "related.user", "twice"},
		{"related user empty", func(o *plugins.Object) { o.Set("related.user", []any{}) }, "related.user", "must not be empty"},
		{"bad email", func(o *plugins.Object) { o.Set("user.email", "not-an-email") }, "user.email", "not an email"},
		{"bad country", func(o *plugins.Object) { o.Set("source.geo.country_iso_code", "Korea") }, "source.geo.country_iso_code", "alpha-2"},
		{"unknown field", func(o *plugins.Object) { o.Set("historyId", "x") }, "historyId", "not a field of the contract"},
		{"unknown nested", func(o *plugins.Object) { o.Set("user.nickname", "x") }, "user.nickname", "not a field of the contract"},
		{"empty string", func(o *plugins.Object) { o.Set("cloud.region", "") }, "cloud.region", "empty strings"},
		{"null in vendor", func(o *plugins.Object) { o.Set("ncloud.activity_tracer.resourceName", nil) }, "ncloud.activity_tracer.resourceName", "null"},
		{"empty in vendor", func(o *plugins.Object) { o.Set("ncloud.activity_tracer.productData.memo", "") }, "ncloud.activity_tracer.productData.memo", "empty strings"},
		{"other vendor", func(o *plugins.Object) { o.Set("nhncloud.cloudtrail.eventId", "x") }, "nhncloud", "other dataset"},
		{"stray vendor key", func(o *plugins.Object) { o.Set("ncloud.extra", "x") }, "ncloud.extra", "unexpected"},
		{"bad original", func(o *plugins.Object) { o.Set("event.original", "{not json") }, "event.original", "JSON object"},
		{"bad port", func(o *plugins.Object) { o.Set("source.port", 70000) }, "source.port", "port number"},
		{"port text", func(o *plugins.Object) { o.Set("source.port", "443") }, "source.port", "port number"},
		{"empty object", func(o *plugins.Object) { o.Set("user", plugins.NewObject(0)) }, "user", "empty objects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := plugins.ParseObject([]byte(validDoc))
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(doc)
			vs := Check(doc)
			for _, v := range vs {
				if v.Field == tt.field && strings.Contains(v.Problem, tt.want) {
					return
				}
			}
			t.Fatalf("want a violation %s: …%s…, got %v", tt.field, tt.want, vs)
		})
	}
	if v := Check(nil); len(v) != 1 {
		t.Errorf("Check(nil) = %v", v)
	}
}

// NHN documents need event.code too.
func TestCheckNHNNeedsCode(t *testing.T) {
	doc, _ := plugins.ParseObject([]byte(validDoc))
	doc.Set("event.module", "nhncloud")
	doc.Set("cloud.provider", "nhncloud")
	doc.Set("event.dataset", DatasetNHN)
	vs := Check(doc)
	if len(vs) != 1 || vs[0].Field != "event.code" {
		t.Fatalf("want only event.code missing, got %v", vs)
	}
}

func TestValidIP(t *testing.T) {
	for s, want := range map[string]bool{
		"203.0.113.7": true, "2001:db8::1": true, "::1": true, "::ffff:1.2.3.4": true, "fe80::1%eth0": true,
		"10.00.00.000": false, "***.***.***.***": false, "1.2.3": false, "1.2.3.4.5": false, "dead": false,
		"deadbeef": false, "2345678": false, "a.b.c.d": false, "": false, "1.2.3.4:443": false, "[::1]": false,
	} {
		if got := validIP(s); got != want {
			t.Errorf("validIP(%q) = %v, want %v", s, got, want)
		}
	}
}
