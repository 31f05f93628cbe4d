package ecs

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/auditforwarder/forwarder/plugins"
)

// Violation is one way a document breaks the ECS output contract.
type Violation struct {
	// Field is the dotted path of the field concerned ("" for the document).
	Field string
	// Problem says what is wrong.
	Problem string
}

// String renders "field: problem".
func (v Violation) String() string {
	if v.Field == "" {
		return v.Problem
	}
	return v.Field + ": " + v.Problem
}

type fieldKind int

const (
	kKeyword fieldKind = iota
	kDate
	kIP
	kPort
	kKeywordArray
	kIPArray
	kEmail
	kCountry
	kCategoryArray
	kTypeArray
	kOutcome
	kKind
	kJSON
)

// ecsFields is every ECS field the transform may write, with its type.
var ecsFields = map[string]fieldKind{
	"@timestamp":                  kDate,
	"event.id":                    kKeyword,
	"event.kind":                  kKind,
	"event.module":                kKeyword,
	"event.dataset":               kKeyword,
	"event.provider":              kKeyword,
	"event.action":                kKeyword,
	"event.code":                  kKeyword,
	"event.outcome":               kOutcome,
	"event.category":              kCategoryArray,
	"event.type":                  kTypeArray,
	"event.created":               kDate,
	"event.original":              kJSON,
	"cloud.provider":              kKeyword,
	"cloud.region":                kKeyword,
	"cloud.account.id":            kKeyword,
	"cloud.project.id":            kKeyword,
	"cloud.project.name":          kKeyword,
	"cloud.service.name":          kKeyword,
	"organization.id":             kKeyword,
	"source.ip":                   kIP,
	"source.port":                 kPort,
	"source.geo.country_iso_code": kCountry,
	"user.id":                     kKeyword,
	"user.name":                   kKeyword,
	"user.full_name":              kKeyword,
	"user.email":                  kEmail,
	"user.domain":                 kKeyword,
	"user.target.id":              kKeyword,
	"user.target.name":            kKeyword,
	"user.target.full_name":       kKeyword,
	"user.target.email":           kEmail,
	"user_agent.original":         kKeyword,
	"related.ip":                  kIPArray,
	"related.user":                kKeywordArray,
	"error.code":                  kKeyword,
	"error.message":               kKeyword,
	"ecs.version":                 kKeyword,
}

// requiredFields are in every document ("at least" in the contract).
var requiredFields = []string{
	"@timestamp", "event.id", "event.kind", "event.module", "event.dataset", "event.provider",
	"event.action", "event.outcome", "event.category", "event.type", "event.created",
	"cloud.provider", "ecs.version",
}

var timestampRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// Check validates an ECS document produced by the transform against the
// contract of DESIGN.md: the required fields, their types and formats
// (@timestamp RFC 3339 UTC with milliseconds, IPs, ECS allowed values for
// event.kind / category / type / outcome), the dataset's constants
// (module, provider, dataset, ecs.version), no field outside ECS except the
// dataset's vendor namespace, no null and no empty string anywhere. It
// returns nil for a valid document.
func Check(doc *plugins.Object) []Violation {
	c := &checker{}
	if doc == nil {
		return []Violation{{Problem: "document is null"}}
	}
	dataset, _ := doc.GetString("event.dataset")
	var ds *datasetInfo
	switch dataset {
	case DatasetNCP:
		ds = ncpInfo
	case DatasetNHN:
		ds = nhnInfo
	default:
		c.add("event.dataset", "must be %s or %s, got %q", DatasetNCP, DatasetNHN, dataset)
	}
	for _, f := range requiredFields {
		if _, ok := doc.Get(f); !ok {
			c.add(f, "is required")
		}
	}
	if ds == nhnInfo {
		if _, ok := doc.Get("event.code"); !ok {
			c.add("event.code", "is required")
		}
	}
	for i := 0; i < doc.Len(); i++ {
		k, v := doc.Key(i), doc.Value(i)
		if ds != nil && k == ds.module {
			c.checkVendor(ds, v)
			continue
		}
		if k == "ncloud" || k == "nhncloud" {
			c.add(k, "is the other dataset's namespace")
			continue
		}
		c.walk(k, v)
	}
	if ds != nil {
		c.expect(doc, "event.module", ds.module)
		c.expect(doc, "cloud.provider", ds.module)
		c.expect(doc, "event.kind", "event")
		c.expect(doc, "ecs.version", Version)
	}
	if _, hasCat := doc.Get("event.category"); hasCat {
		if _, hasType := doc.Get("event.type"); !hasType {
			c.add("event.type", "must accompany event.category")
		}
	}
	sort.SliceStable(c.out, func(i, j int) bool { return c.out[i].Field < c.out[j].Field })
	return c.out
}

var errNotPort = errors.New("not a port")

type checker struct {
	out []Violation
}

func (c *checker) add(field, format string, args ...any) {
	c.out = append(c.out, Violation{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (c *checker) expect(doc *plugins.Object, path, want string) {
	if got, ok := doc.Get(path); ok && got != want {
		c.add(path, "must be %q, got %s", want, describe(got))
	}
}

func (c *checker) checkVendor(ds *datasetInfo, v any) {
	o, ok := v.(*plugins.Object)
	if !ok {
		c.add(ds.module, "must be an object")
		return
	}
	for i := 0; i < o.Len(); i++ {
		if o.Key(i) != ds.vendorKey {
			c.add(ds.module+"."+o.Key(i), "unexpected: API fields go under %s.%s", ds.module, ds.vendorKey)
			continue
		}
		inner, ok := o.Value(i).(*plugins.Object)
		if !ok {
			c.add(ds.module+"."+ds.vendorKey, "must be an object")
			continue
		}
		c.noEmpty(ds.module+"."+ds.vendorKey, inner, 0)
	}
}

// noEmpty reports nulls and empty strings among an object's members.
func (c *checker) noEmpty(path string, v any, depth int) {
	if depth > 64 {
		return
	}
	switch t := v.(type) {
	case nil:
		c.add(path, "null values are dropped, not written")
	case string:
		if t == "" {
			c.add(path, "empty strings are dropped, not written")
		}
	case *plugins.Object:
		for i := 0; i < t.Len(); i++ {
			c.noEmpty(path+"."+t.Key(i), t.Value(i), depth+1)
		}
	case []any:
		for _, e := range t {
			if o, ok := e.(*plugins.Object); ok {
				c.noEmpty(path+"[]", o, depth+1)
			}
		}
	}
}

func (c *checker) walk(path string, v any) {
	if o, ok := v.(*plugins.Object); ok {
		if o.Len() == 0 {
			c.add(path, "empty objects are not written")
		}
		for i := 0; i < o.Len(); i++ {
			c.walk(path+"."+o.Key(i), o.Value(i))
		}
		return
	}
	kind, known := ecsFields[path]
	if !known {
		c.add(path, "is not a field of the contract (API fields go under the vendor namespace)")
		return
	}
	c.checkValue(path, kind, v)
}

func (c *checker) checkValue(path string, kind fieldKind, v any) {
	switch kind {
	case kKeywordArray, kIPArray, kCategoryArray, kTypeArray:
		arr, ok := v.([]any)
		if !ok {
			c.add(path, "must be an array of strings, got %s", describe(v))
			return
		}
		if len(arr) == 0 {
			c.add(path, "must not be empty")
		}
		seen := make(map[string]bool, len(arr))
		for _, e := range arr {
			s, ok := e.(string)
			if !ok || s == "" {
				c.add(path, "must hold non-empty strings, got %s", describe(e))
				continue
			}
			if seen[s] {
				c.add(path, "holds %q twice", s)
			}
			seen[s] = true
			switch kind {
			case kIPArray:
				if !validIP(s) {
					c.add(path, "%q is not an IP address", s)
				}
			case kCategoryArray:
				if !allowedCategories[s] {
					c.add(path, "%q is not an ECS allowed value", s)
				}
			case kTypeArray:
				if !allowedTypes[s] {
					c.add(path, "%q is not an ECS allowed value", s)
				}
			}
		}
		return
	case kPort:
		var p int64
		var err error
		switch t := v.(type) {
		case int:
			p = int64(t)
		case int64:
			p = t
		case plugins.Number: // a document read back from JSON
			p, err = strconv.ParseInt(string(t), 10, 64)
		default:
			err = errNotPort
		}
		if err != nil || p < 1 || p > 65535 {
			c.add(path, "must be a port number, got %s", describe(v))
		}
		return
	}
	s, ok := v.(string)
	if !ok {
		c.add(path, "must be a string, got %s", describe(v))
		return
	}
	if s == "" {
		c.add(path, "empty strings are dropped, not written")
		return
	}
	switch kind {
	case kDate:
		if !timestampRE.MatchString(s) {
			c.add(path, "must be RFC 3339 UTC with milliseconds (2024-10-10T03:09:45.024Z), got %q", s)
		} else if _, ok := parseISOTime(s); !ok {
			c.add(path, "is not a valid date: %q", s)
		}
	case kIP:
		if _, err := netip.ParseAddr(s); err != nil {
			c.add(path, "%q is not an IP address", s)
		}
	case kEmail:
		if _, ok := emailDomain(s); !ok {
			c.add(path, "%q is not an email address", s)
		}
	case kCountry:
		if !isCountryCode(s) {
			c.add(path, "must be an ISO 3166-1 alpha-2 code, got %q", s)
		}
	case kOutcome:
		if !allowedOutcomes[s] {
			c.add(path, "%q is not an ECS allowed value (failure, success, unknown)", s)
		}
	case kKind:
		if !allowedKinds[s] {
			c.add(path, "%q is not an ECS allowed value", s)
		}
	case kJSON:
		if _, err := plugins.ParseObject([]byte(s)); err != nil {
			c.add(path, "must hold the raw item as a JSON object")
		}
	}
	if strings.TrimSpace(s) == "" {
		c.add(path, "must not be blank")
	}
}

func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", t)
	case *plugins.Object:
		return "an object"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case plugins.Number, int, int64, float64:
		return fmt.Sprintf("the number %v", t)
	}
	return fmt.Sprintf("%T", v)
}
