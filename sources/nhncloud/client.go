package nhncloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// ErrorClass says what the source should do about a failed request.
type ErrorClass int

// Error classes.
const (
	// ClassTransient: retry with backoff (HTTP 5xx, timeouts, transient resultCodes).
	ClassTransient ErrorClass = iota
	// ClassAuth: the appKey or the v2.0 user access key is wrong. Report
	// not-ready, log an ERROR and retry only after a long backoff.
	ClassAuth
	// ClassPermission: authenticated but not allowed (CloudTrail:EventLog.List).
	// Handled like ClassAuth.
	ClassPermission
	// ClassBadRequest: the query itself is wrong (a config problem): stop
	// the source with a Permanent error.
	ClassBadRequest
	// ClassQuota: the API gateway's quota is exhausted (HTTP 403, 20004):
	// back off for longer than for a transient failure.
	ClassQuota
	// ClassUnknown: a resultCode or answer the client does not know: retry
	// with backoff and log the code and message.
	ClassUnknown
	// ClassMalformed: HTTP 200 whose body is not a CloudTrail answer.
	ClassMalformed
)

// String names the class.
func (c ErrorClass) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassAuth:
		return "authentication"
	case ClassPermission:
		return "permission"
	case ClassBadRequest:
		return "bad_request"
	case ClassQuota:
		return "quota"
	case ClassUnknown:
		return "unknown"
	case ClassMalformed:
		return "malformed"
	}
	return "unknown"
}

// ClassifyResultCode maps a header.resultCode of an HTTP-200 failure to a class.
func ClassifyResultCode(code int64) ErrorClass {
	switch code {
	case CodeAuthFailed, CodeAuthHeaderMissing, CodeInvalidAppKey:
		return ClassAuth
	case CodePermissionDenied:
		return ClassPermission
	case CodeInvalidParameter, CodeInvalidPageLimit, CodeEventIDRequired:
		return ClassBadRequest
	case CodeQuotaExceeded:
		return ClassQuota
	case CodeInternalError, CodeServiceUnavail, CodeTimeout:
		return ClassTransient
	}
	return ClassUnknown
}

// APIError is a failed search. Its message carries the HTTP status and the
// API's resultCode and resultMessage, never the appKey or a secret.
type APIError struct {
	Class      ErrorClass
	Version    string
	HTTPStatus int // 0 when no answer arrived
	// HasCode is true when the body carried header.resultCode.
	HasCode       bool
	ResultCode    int64
	ResultMessage string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Detail is a hint or the (scrubbed) transport error.
	Detail string
	cause  error
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("nhncloud cloudtrail ")
	b.WriteString(e.Version)
	b.WriteString(": ")
	switch e.Class {
	case ClassAuth:
		b.WriteString("authentication failed")
	case ClassPermission:
		b.WriteString("permission denied")
	case ClassBadRequest:
		b.WriteString("the API rejected the request")
	case ClassQuota:
		b.WriteString("API quota exhausted")
	case ClassTransient:
		b.WriteString("temporary failure")
	case ClassMalformed:
		b.WriteString("malformed answer")
	default:
		b.WriteString("unexpected answer")
	}
	if e.HTTPStatus != 0 || e.HasCode {
		b.WriteString(" (")
		if e.HTTPStatus != 0 {
			b.WriteString("HTTP ")
			b.WriteString(strconv.Itoa(e.HTTPStatus))
		}
		if e.HasCode {
			if e.HTTPStatus != 0 {
				b.WriteString(", ")
			}
			b.WriteString("resultCode ")
			b.WriteString(strconv.FormatInt(e.ResultCode, 10))
			if e.ResultMessage != "" {
				b.WriteString(": ")
				b.WriteString(e.ResultMessage)
			}
		}
		b.WriteString(")")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns the transport error, if any.
func (e *APIError) Unwrap() error { return e.cause }

// Page is one parsed answer page.
type Page struct {
	// Items are the raw API items, in the order the API sent them.
	Items            []*plugins.Object
	TotalPages       int64
	TotalElements    int64
	Number           int64
	Size             int64
	NumberOfElements int64
	Last             bool
	// HasLast is false when the answer had no "last" field; the caller
	// then relies on totalPages.
	HasLast bool
	// HasTotals is false when totalPages or totalElements is missing (the
	// v2.0 guide's example shows a page with content only); the caller
	// then pages on while pages come back full.
	HasTotals bool
}

// Client calls the search API of one appKey and version.
type Client struct {
	version     string
	appKey      plugins.Secret
	accessKeyID plugins.Secret
	secret      plugins.Secret
	hc          *http.Client
	url         string // with the real appKey; never printed
	shownURL    string // with the appKey redacted
	userAgent   string
}

// ClientOptions configure a Client.
type ClientOptions struct {
	// Endpoint is the API host as scheme://host[:port][/prefix].
	Endpoint string
	// Version is VersionV1 or VersionV2 (v1/v2 accepted).
	Version         string
	AppKey          plugins.Secret
	UserAccessKeyID plugins.Secret
	SecretAccessKey plugins.Secret
	// Timeout bounds each request (0: none beyond the context).
	Timeout time.Duration
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
	// UserAgent is sent as User-Agent.
	UserAgent string
}

// NewClient returns a client. Redirects are never followed: the appKey is
// part of the path and must not be sent anywhere else.
func NewClient(o ClientOptions) (*Client, error) {
	v, ok := normalizeVersion(o.Version)
	if !ok {
		return nil, fmt.Errorf("api version must be v1 or v2")
	}
	u, err := url.Parse(strings.TrimRight(o.Endpoint, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint must be an http(s) URL such as https://<cloudtrail api host>")
	}
	base := strings.TrimRight(o.Endpoint, "/")
	c := &Client{
		version:     v,
		appKey:      o.AppKey,
		accessKeyID: o.UserAccessKeyID,
		secret:      o.SecretAccessKey,
		url:         base + SearchPath(v, url.PathEscape(o.AppKey.Reveal())),
		shownURL:    base + SearchPath(v, plugins.Redacted),
		userAgent:   o.UserAgent,
	}
	if c.userAgent == "" {
		c.userAgent = "auditforwarder-nhncloud"
	}
	tr := o.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	c.hc = &http.Client{
		Transport:     tr,
		Timeout:       o.Timeout,
		CheckRedirect: NoRedirect,
	}
	return c, nil
}

// NoRedirect is the CheckRedirect policy of every client that calls the
// API: never follow. The appKey is part of the path and v2.0 sends the
// secret in a custom header, which net/http would forward to whatever host
// a redirect names.
func NoRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Version returns the API version in path form (v1.0 or v2.0).
func (c *Client) Version() string { return c.version }

// URL returns the search URL with the appKey redacted, for messages.
func (c *Client) URL() string { return c.shownURL }

// maxBody bounds an answer: 1000 items of a few KB each, with ample room.
const maxBody = 64 << 20

// NewRequest builds the HTTP request of one search. Call it again for
// every attempt: the body reader is consumed by sending.
func (c *Client) NewRequest(ctx context.Context, q *SearchRequest) (*http.Request, error) {
	body, err := json.Marshal(q)
	if err != nil {
		return nil, fmt.Errorf("encode search request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, c.transportError(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.version == VersionV2 {
		req.Header.Set(HeaderAuthID, c.accessKeyID.Reveal())
		req.Header.Set(HeaderAuthSecret, c.secret.Reveal())
	}
	return req, nil
}

// Interpret turns an answer (any status, whole body) into a page or an
// *APIError.
func (c *Client) Interpret(resp *http.Response, body []byte) (*Page, error) {
	if len(body) > maxBody {
		return nil, &APIError{Class: ClassUnknown, Version: c.version, HTTPStatus: resp.StatusCode, Detail: "answer larger than 64 MiB"}
	}
	return c.interpret(resp, body)
}

// Search sends one search request with the client's own HTTP client and
// parses the page. Failures are *APIError (or ctx's error when ctx ended).
// The source sends through httppoll instead (NewRequest + Interpret).
func (c *Client) Search(ctx context.Context, q *SearchRequest) (*Page, error) {
	req, err := c.NewRequest(ctx, q)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.transportError(fmt.Errorf("read answer: %w", err))
	}
	return c.Interpret(resp, data)
}

func (c *Client) interpret(resp *http.Response, data []byte) (*Page, error) {
	st := resp.StatusCode
	if st == http.StatusOK {
		page, hdr, err := ParsePage(data)
		if hdr != nil && !hdr.Successful() {
			class := ClassifyResultCode(hdr.ResultCode)
			hint := c.hint(class)
			if hdr.ResultCode == CodeEventIDRequired {
				hint = "this API requires eventId: list the event ids to collect in event_ids"
			}
			return nil, c.newError(class, st, hdr, hint)
		}
		if err != nil {
			return nil, c.newError(ClassMalformed, st, hdr, "answer is not a CloudTrail page: "+err.Error())
		}
		if page == nil {
			return nil, c.newError(ClassMalformed, st, hdr, "successful answer without a page")
		}
		return page, nil
	}
	// Not 200: the gateway (quota, auth), a load balancer or a proxy.
	hdr, _ := parseHeaderOnly(data)
	class := ClassUnknown
	switch {
	case hdr != nil && hdr.HasCode && hdr.ResultCode == CodeQuotaExceeded:
		class = ClassQuota
	case hdr != nil && hdr.HasCode && ClassifyResultCode(hdr.ResultCode) != ClassUnknown:
		class = ClassifyResultCode(hdr.ResultCode)
	case st == http.StatusTooManyRequests:
		class = ClassQuota
	case st == http.StatusUnauthorized:
		class = ClassAuth
	case st == http.StatusForbidden:
		class = ClassPermission
	case st == http.StatusRequestTimeout || st >= 500:
		class = ClassTransient
	case st >= 300 && st < 400:
		class = ClassBadRequest
	case st == http.StatusNotFound || st == http.StatusMethodNotAllowed:
		class = ClassBadRequest
	case st >= 400 && st < 500:
		class = ClassBadRequest
	}
	e := c.newError(class, st, hdr, c.hint(class))
	if st >= 300 && st < 400 {
		e.Detail = "the endpoint redirects (not followed: the appKey is part of the path); set endpoint to the final API host"
	} else if st == http.StatusNotFound && (hdr == nil || !hdr.HasCode) {
		e.Detail = "no such API path: check endpoint and api_version"
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(0, time.Until(t))
		}
	}
	return nil, e
}

func (c *Client) hint(class ErrorClass) string {
	switch class {
	case ClassAuth:
		if c.version == VersionV2 {
			return "check app_key, user_access_key_id and secret_access_key"
		}
		return "check app_key"
	case ClassPermission:
		return "the user access key needs the CloudTrail:EventLog.List permission"
	case ClassBadRequest:
		return "check endpoint, api_version, page_size, event_ids and member"
	}
	return ""
}

func (c *Client) newError(class ErrorClass, status int, hdr *ResponseHeader, detail string) *APIError {
	e := &APIError{Class: class, Version: c.version, HTTPStatus: status, Detail: c.scrub(detail)}
	if hdr != nil {
		e.HasCode, e.ResultCode, e.ResultMessage = hdr.HasCode, hdr.ResultCode, c.scrub(truncate(hdr.ResultMessage, 300))
	}
	return e
}

// transportError turns a net/http error, whose text quotes the URL (and so
// the appKey), into an APIError that quotes the redacted URL.
func (c *Client) transportError(err error) *APIError {
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	msg := c.scrub("POST " + c.shownURL + ": " + inner.Error())
	return &APIError{Class: ClassTransient, Version: c.version, Detail: msg, cause: &scrubbed{msg: msg, err: inner}}
}

// scrub removes the appKey and the secret from text that came from outside.
func (c *Client) scrub(s string) string {
	for _, secret := range []string{c.appKey.Reveal(), url.PathEscape(c.appKey.Reveal()), c.secret.Reveal(), c.accessKeyID.Reveal()} {
		if secret != "" && strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, plugins.Redacted)
		}
	}
	return s
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// ResponseHeader is the body's header object.
type ResponseHeader struct {
	// HasSuccess/HasCode say whether the fields were present.
	HasSuccess    bool
	IsSuccessful  bool
	HasCode       bool
	ResultCode    int64
	ResultMessage string
}

// Successful applies the API's rule: isSuccessful true, or, when the
// field is absent, resultCode 0.
func (h *ResponseHeader) Successful() bool {
	if h.HasSuccess {
		return h.IsSuccessful
	}
	return h.HasCode && h.ResultCode == 0
}

// ParsePage parses an HTTP-200 answer body. It returns the header even
// when the page is malformed, and a nil page when the body has none (as
// error answers do). A body without a header is an error.
func ParsePage(data []byte) (*Page, *ResponseHeader, error) {
	root, err := plugins.ParseObject(data)
	if err != nil {
		return nil, nil, err
	}
	hdr, err := headerOf(root)
	if err != nil {
		return nil, nil, err
	}
	pv, ok := root.GetKey("page")
	if !ok || pv == nil {
		return nil, hdr, nil
	}
	po, ok := pv.(*plugins.Object)
	if !ok {
		return nil, hdr, fmt.Errorf("page is not an object")
	}
	p := &Page{}
	cv, _ := po.GetKey("content")
	switch content := cv.(type) {
	case nil:
	case []any:
		p.Items = make([]*plugins.Object, len(content))
		for i, it := range content {
			o, ok := it.(*plugins.Object)
			if !ok {
				return nil, hdr, fmt.Errorf("page.content[%d] is not an object", i)
			}
			p.Items[i] = o
		}
	default:
		return nil, hdr, fmt.Errorf("page.content is not an array")
	}
	ints := []struct {
		key string
		dst *int64
	}{{"totalPages", &p.TotalPages}, {"totalElements", &p.TotalElements}, {"number", &p.Number}, {"size", &p.Size}, {"numberOfElements", &p.NumberOfElements}}
	p.HasTotals = true
	for _, f := range ints {
		v, ok := po.GetKey(f.key)
		if !ok || v == nil {
			if f.key == "totalPages" || f.key == "totalElements" {
				p.HasTotals = false
			}
			continue
		}
		n, ok := intValue(v)
		if !ok || n < 0 {
			return nil, hdr, fmt.Errorf("page.%s is not a non-negative integer", f.key)
		}
		*f.dst = n
	}
	if v, ok := po.GetKey("last"); ok && v != nil {
		b, ok := v.(bool)
		if !ok {
			return nil, hdr, fmt.Errorf("page.last is not a boolean")
		}
		p.Last, p.HasLast = b, true
	}
	return p, hdr, nil
}

func parseHeaderOnly(data []byte) (*ResponseHeader, error) {
	root, err := plugins.ParseObject(data)
	if err != nil {
		return nil, err
	}
	return headerOf(root)
}

func headerOf(root *plugins.Object) (*ResponseHeader, error) {
	hv, ok := root.GetKey("header")
	if !ok {
		return nil, fmt.Errorf("no header")
	}
	ho, ok := hv.(*plugins.Object)
	if !ok {
		return nil, fmt.Errorf("header is not an object")
	}
	h := &ResponseHeader{}
	if v, ok := ho.GetKey("isSuccessful"); ok && v != nil {
		switch t := v.(type) {
		case bool:
			h.HasSuccess, h.IsSuccessful = true, t
		case string:
			if b, err := strconv.ParseBool(t); err == nil {
				h.HasSuccess, h.IsSuccessful = true, b
			}
		}
	}
	if v, ok := ho.GetKey("resultCode"); ok && v != nil {
		n, ok := intValue(v)
		if !ok {
			if s, isStr := v.(string); isStr {
				n, ok = parseIntString(s)
			}
		}
		if ok {
			h.HasCode, h.ResultCode = true, n
		}
	}
	if v, ok := ho.GetKey("resultMessage"); ok {
		if s, ok := v.(string); ok {
			h.ResultMessage = s
		}
	}
	if !h.HasSuccess && !h.HasCode {
		return nil, fmt.Errorf("header has neither isSuccessful nor resultCode")
	}
	return h, nil
}

func parseIntString(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil
}

func intValue(v any) (int64, bool) {
	switch t := v.(type) {
	case plugins.Number:
		n, err := strconv.ParseInt(string(t), 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(string(t), 64)
			if ferr != nil || f != float64(int64(f)) {
				return 0, false
			}
			return int64(f), true
		}
		return n, true
	case int:
		return int64(t), true
	case int64:
		return t, true
	case float64:
		if t != float64(int64(t)) {
			return 0, false
		}
		return int64(t), true
	}
	return 0, false
}
