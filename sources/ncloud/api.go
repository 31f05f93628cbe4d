package ncloud

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/internal/httppoll"
)

// ActivitiesPath is GetActivityList's path.
const ActivitiesPath = "/api/v1/activities"

// Dataset names the shape of the events this source emits.
const Dataset = "ncloud.activity_tracer"

// MaskedIP is how the API shows a source address it hides.
const MaskedIP = "***.***.***.***"

// ListRequest is GetActivityList's body. The API documents integers; its
// own example sends pageIndex and pageSize as strings, which it accepts
// too — we send integers.
type ListRequest struct {
	FromEventTime int64  `json:"fromEventTime"`
	ToEventTime   int64  `json:"toEventTime"`
	NRN           string `json:"nrn,omitempty"`
	PageIndex     int    `json:"pageIndex"`
	PageSize      int    `json:"pageSize"`
}

// Page is a parsed GetActivityList response. Items are the raw API items,
// newest first.
type Page struct {
	PageIndex int
	PageSize  int
	ItemCount int
	HasMore   bool
	Items     []*plugins.Object
}

// ParsePage parses a response body. The Content-Type is not trusted (the
// API may say text/plain); a body that is not a JSON object with an items
// array is a Malformed error.
func ParsePage(body []byte) (*Page, error) {
	o, err := plugins.ParseObject(body)
	if err != nil {
		return nil, httppoll.MalformedError("response is not a JSON object (%d bytes): %v", len(body), err)
	}
	raw, ok := o.GetKey("items")
	if !ok {
		return nil, httppoll.MalformedError("response has no items (%d bytes)", len(body))
	}
	var list []any
	switch v := raw.(type) {
	case []any:
		list = v
	case nil:
	default:
		return nil, httppoll.MalformedError("response items is not an array")
	}
	p := &Page{Items: make([]*plugins.Object, 0, len(list))}
	for i, it := range list {
		obj, ok := it.(*plugins.Object)
		if !ok {
			return nil, httppoll.MalformedError("response item %d is not an object", i)
		}
		p.Items = append(p.Items, obj)
	}
	p.PageIndex, _ = intField(o, "pageIndex")
	p.PageSize, _ = intField(o, "pageSize")
	p.ItemCount, _ = intField(o, "itemCount")
	switch v, _ := o.GetKey("hasMore"); v := v.(type) {
	case bool:
		p.HasMore = v
	case string:
		p.HasMore = strings.EqualFold(v, "true")
	}
	return p, nil
}

// intField reads an integer sent as a JSON number or a string of digits.
func intField(o *plugins.Object, key string) (int, bool) {
	v, ok := o.GetKey(key)
	if !ok {
		return 0, false
	}
	n, ok := toInt64(v)
	return int(n), ok
}

func toInt64(v any) (int64, bool) {
	switch t := v.(type) {
	case plugins.Number:
		if n, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return n, true
		}
		if f, err := strconv.ParseFloat(string(t), 64); err == nil {
			return int64(f), true
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64); err == nil {
			return n, true
		}
	case int:
		return int64(t), true
	case int64:
		return t, true
	case float64:
		return int64(t), true
	}
	return 0, false
}

// ItemEvent turns a raw API item into an event: the item is the document,
// untouched; the id is historyId (a fingerprint of the item if it has
// none) and the time is eventTime (fallback when absent).
func ItemEvent(item *plugins.Object, sourceID string, fallback, received time.Time) *plugins.Event {
	id := ""
	switch v, _ := item.GetKey("historyId"); v := v.(type) {
	case string:
		id = v
	case plugins.Number:
		id = string(v)
	}
	if id == "" {
		id = plugins.Fingerprint(item)
	}
	t := fallback
	if v, ok := item.GetKey("eventTime"); ok {
		if ms, ok := toInt64(v); ok {
			t = time.UnixMilli(ms).UTC()
		}
	}
	return &plugins.Event{Fields: item, Meta: plugins.Meta{
		Source: sourceID, Dataset: Dataset, ID: id, Time: t, Received: received,
	}}
}

// GatewayError is an error answer of the NCP API gateway:
// {"error":{"errorCode":"200","message":"Authentication Failed","details":"…"}}.
// errorCode arrives as a string or a number.
type GatewayError struct {
	Status  int
	Code    string
	Message string
	Details string
	TraceID string
}

// ParseGatewayError reads the error body of resp; fields the body lacks
// stay empty (a proxy's HTML page has none).
func ParseGatewayError(resp *http.Response, body []byte) *GatewayError {
	e := &GatewayError{Status: resp.StatusCode, TraceID: resp.Header.Get(HeaderTraceID)}
	o, err := plugins.ParseObject(body)
	if err != nil {
		return e
	}
	eo, ok := o.GetObject("error")
	if !ok {
		return e
	}
	switch v, _ := eo.GetKey("errorCode"); v := v.(type) {
	case string:
		e.Code = v
	case plugins.Number:
		e.Code = string(v)
	}
	e.Message, _ = eo.GetString("message")
	e.Details, _ = eo.GetString("details")
	return e
}

// Error renders status, NCP code, message, details and trace id.
func (e *GatewayError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	if e.Code != "" || e.Message != "" {
		fmt.Fprintf(&b, ", NCP error %s %q", e.Code, e.Message)
	}
	if e.Details != "" {
		fmt.Fprintf(&b, ": %s", e.Details)
	}
	if e.TraceID != "" {
		fmt.Fprintf(&b, " (x-ncp-trace-id %s)", e.TraceID)
	}
	return b.String()
}

// isTimestampError reports whether the gateway refused the request's
// timestamp (more than 5 minutes off its clock).
func (e *GatewayError) isTimestampError() bool {
	return e.Status == http.StatusUnauthorized &&
		(strings.Contains(strings.ToLower(e.Details), "timestamp") || strings.Contains(strings.ToLower(e.Message), "timestamp"))
}

// classify turns a non-2xx answer into an *httppoll.Error with a message a
// user can act on.
func classify(resp *http.Response, body []byte, now time.Time) *httppoll.Error {
	ge := ParseGatewayError(resp, body)
	var kind httppoll.Kind
	var err error
	switch {
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized && ge.Code == "210":
		kind = httppoll.Auth
		err = fmt.Errorf("permission denied: %w; the access key's account needs permission to read Cloud Activity Tracer", ge)
	case resp.StatusCode == http.StatusUnauthorized:
		kind = httppoll.Auth
		err = fmt.Errorf("authentication failed: %w; check access_key and secret_key (or %s / %s)", ge, EnvAccessKey, EnvSecretKey)
	case resp.StatusCode == http.StatusTooManyRequests:
		kind = httppoll.RateLimited
		err = fmt.Errorf("rate limited: %w; consider a lower rate_limit", ge)
	case resp.StatusCode == http.StatusBadRequest:
		kind = httppoll.Fatal
		err = fmt.Errorf("bad request: %w", ge)
	case resp.StatusCode == http.StatusNotFound:
		kind = httppoll.Fatal
		err = fmt.Errorf("not found: %w; is endpoint the Cloud Activity Tracer API?", ge)
	default:
		kind = httppoll.ClassifyStatus(resp.StatusCode)
		err = fmt.Errorf("API error: %w", ge)
	}
	e := httppoll.NewError(kind, resp.StatusCode, err)
	if d, ok := httppoll.ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
		e.RetryAfter = d
	}
	return e
}
