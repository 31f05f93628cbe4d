package elasticsearch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// esError is Elasticsearch's error object: {"type", "reason", "caused_by"}.
type esError struct {
	Type     string   `json:"type"`
	Reason   string   `json:"reason"`
	CausedBy *esError `json:"caused_by,omitempty"`
	status   int
}

// String renders "status 400, document_parsing_exception: reason: caused by: …".
func (e esError) String() string {
	var b strings.Builder
	if e.status != 0 {
		b.WriteString("status ")
		b.WriteString(strconv.Itoa(e.status))
	}
	if e.Type != "" {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.Type)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(truncate(e.Reason, 1024))
	}
	for c, depth := e.CausedBy, 0; c != nil && depth < 4; c, depth = c.CausedBy, depth+1 {
		b.WriteString("; caused by ")
		b.WriteString(c.Type)
		if c.Reason != "" {
			b.WriteString(": ")
			b.WriteString(truncate(c.Reason, 512))
		}
	}
	if b.Len() == 0 {
		return "unknown error"
	}
	return b.String()
}

func (e esError) withStatus(status int) esError { e.status = status; return e }

// reason is the metric label for the error: its type, or the HTTP status.
func (e esError) reason() string {
	if e.Type != "" {
		return sanitizeReason(e.Type)
	}
	if e.status != 0 {
		return "http_" + strconv.Itoa(e.status)
	}
	return "unknown"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseErrorJSON reads {"error": {...}, "status": N} (or a plain-text body).
func parseErrorJSON(data []byte) esError {
	var env struct {
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &env); err == nil && len(env.Error) > 0 {
		var e esError
		if json.Unmarshal(env.Error, &e) == nil && (e.Type != "" || e.Reason != "") {
			return e
		}
		var s string
		if json.Unmarshal(env.Error, &s) == nil {
			return esError{Reason: s}
		}
	}
	return esError{Reason: truncate(strings.TrimSpace(string(data)), 256)}
}

func parseErrorBody(r io.Reader) esError {
	data, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	return parseErrorJSON(data)
}

// statusError is an HTTP error answer to a whole request.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// definitive reports whether retrying the same request cannot help: a 4xx
// other than 408 (timeout) and 429 (too many requests).
func (e *statusError) definitive() bool {
	return e.status >= 400 && e.status < 500 && e.status != http.StatusRequestTimeout && e.status != http.StatusTooManyRequests
}

func classifyStatus(status int, err error) error {
	return &statusError{status: status, msg: err.Error()}
}

// transportError is a request that got no usable answer (connection
// refused, reset, timeout, unreadable response).
type transportError struct{ err error }

func (e *transportError) Error() string { return "elasticsearch unreachable: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// responseError closes res and returns an error for a non-2xx answer.
func responseError(res *esapi.Response, what string) error {
	defer closeBody(res)
	if res.StatusCode < 300 {
		return nil
	}
	e := parseErrorBody(res.Body).withStatus(res.StatusCode)
	return classifyStatus(res.StatusCode, fmt.Errorf("%s: %s", what, e))
}

func closeBody(res *esapi.Response) {
	if res != nil && res.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		_ = res.Body.Close()
	}
}

var respBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads a bulk response (bounded) into a fresh slice.
func readBody(res *esapi.Response) ([]byte, error) {
	b := respBufs.Get().(*bytes.Buffer)
	b.Reset()
	defer respBufs.Put(b)
	if _, err := b.ReadFrom(io.LimitReader(res.Body, 256<<20)); err != nil {
		return nil, err
	}
	return bytes.Clone(b.Bytes()), nil
}

// reasonOf labels a whole-request failure for metrics.
func reasonOf(err error) string {
	var se *statusError
	if errors.As(err, &se) {
		return "http_" + strconv.Itoa(se.status)
	}
	var te *transportError
	if errors.As(err, &te) {
		return "unreachable"
	}
	return "other"
}

func statusClass(status int) string {
	switch {
	case status < 300:
		return "ok"
	case status == http.StatusTooManyRequests:
		return "429"
	case status >= 500:
		return "5xx"
	default:
		return "4xx"
	}
}

// sanitizeReason keeps metric labels to a small, safe alphabet.
func sanitizeReason(s string) string {
	if len(s) > 64 {
		return "other"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return "other"
		}
	}
	return s
}

// bulkResponse is the bulk API answer, filtered to errors and item results.
type bulkResponse struct {
	Errors bool       `json:"errors"`
	Items  []bulkItem `json:"items"`
}

// bulkItem holds one item; exactly one of the op keys is set.
type bulkItem struct {
	Create *itemResult `json:"create"`
	Index  *itemResult `json:"index"`
	Update *itemResult `json:"update"`
	Delete *itemResult `json:"delete"`
}

type itemResult struct {
	Status int      `json:"status"`
	Error  *esError `json:"error"`
}

func (b bulkItem) result() *itemResult {
	switch {
	case b.Create != nil:
		return b.Create
	case b.Index != nil:
		return b.Index
	case b.Update != nil:
		return b.Update
	default:
		return b.Delete
	}
}

func parseBulkResponse(data []byte) (*bulkResponse, error) {
	var r bulkResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("bulk response is not JSON: %w", err)
	}
	return &r, nil
}

type itemKind int

const (
	itemIndexed itemKind = iota
	itemDuplicate
	itemRetry
	itemPermanent
)

type itemOutcome struct {
	kind   itemKind
	reason string
	err    error
}

// notTheDocument lists 400-class error types that are about the cluster or
// the index, not the document: retrying after the operator fixes them works.
var notTheDocument = map[string]bool{
	"index_closed_exception":       true,
	"index_not_found_exception":    true,
	"cluster_block_exception":      true,
	"unavailable_shards_exception": true,
}

// classifyItem decides what one bulk item result means:
//   - 2xx: indexed;
//   - 409 with op create: the document is already there, delivered;
//   - 429 and 5xx: retry;
//   - 400 and 413 (a mapping or parsing error, a document too large):
//     permanent, with Elasticsearch's reason, unless the error is about the
//     index rather than the document;
//   - anything else (401, 403, 404, a 409 with op index): retry, since it
//     is a cluster or permission problem the document cannot be blamed for.
func classifyItem(it bulkItem, opCreate bool) itemOutcome {
	r := it.result()
	if r == nil {
		return itemOutcome{kind: itemRetry, reason: "malformed_item", err: errors.New("bulk response item without a result")}
	}
	var e esError
	if r.Error != nil {
		e = *r.Error
	}
	e.status = r.Status
	switch {
	case r.Status >= 200 && r.Status < 300:
		return itemOutcome{kind: itemIndexed}
	case r.Status == http.StatusConflict && opCreate:
		return itemOutcome{kind: itemDuplicate}
	case (r.Status == http.StatusBadRequest || r.Status == http.StatusRequestEntityTooLarge) && !notTheDocument[e.Type]:
		return itemOutcome{kind: itemPermanent, reason: e.reason(), err: fmt.Errorf("elasticsearch rejected the document: %s", e)}
	default:
		return itemOutcome{kind: itemRetry, reason: e.reason(), err: fmt.Errorf("elasticsearch did not index the document: %s", e)}
	}
}
