package nhncloud

import (
	"fmt"
	"strings"
	"time"
)

// API versions, as they appear in the request path.
const (
	VersionV1 = "v1.0"
	VersionV2 = "v2.0"
)

// Headers the v2.0 API requires.
const (
	HeaderAuthID     = "X-TC-AUTHENTICATION-ID"
	HeaderAuthSecret = "X-TC-AUTHENTICATION-SECRET"
)

// MaxPageLimit is the largest page.limit the API accepts.
const MaxPageLimit = 1000

// Sort orders of page.sortBy.
const (
	SortTimeAsc  = "eventTime:asc"
	SortTimeDesc = "eventTime:desc"
)

// Member types of the member filter.
const (
	MemberTOAST = "TOAST"
	MemberIAM   = "IAM"
)

// Result codes. The CloudTrail guide documents only 0 (success) and that a
// failure carries a non-zero code with header.isSuccessful=false; the API
// gateway answers an exhausted quota with HTTP 403 and 20004. The other codes
// are the ones the simulator answers with and the client classifies; any code
// the client does not know is retried with backoff and logged, so a real code
// outside this table degrades to "retry and tell the operator", never to a
// silent stop or a silent skip.
const (
	CodeSuccess = 0
	// CodeQuotaExceeded comes with HTTP 403 from the API gateway.
	CodeQuotaExceeded = 20004

	CodeInvalidParameter  = 40000 // malformed body, dates, member filter or sort
	CodeInvalidPageLimit  = 40001 // page.limit outside 1..1000
	CodeEventIDRequired   = 40002 // eventId missing where the API insists on it
	CodeAuthFailed        = 40100 // v2.0: unknown access key id or wrong secret
	CodeAuthHeaderMissing = 40101 // v2.0: X-TC-AUTHENTICATION-* absent
	CodeInvalidAppKey     = 40102 // appKey in the path unknown
	CodePermissionDenied  = 40300 // v2.0: user lacks CloudTrail:EventLog.List
	CodeInternalError     = 50000
	CodeServiceUnavail    = 50300
	CodeTimeout           = 50400
)

// SearchRequest is the body of POST /cloud-trail/{version}/appkeys/{appKey}/events/search.
type SearchRequest struct {
	IDNo      string         `json:"idNo,omitempty"`
	Member    *MemberFilter  `json:"member,omitempty"`
	EventID   string         `json:"eventId,omitempty"`
	StartDate string         `json:"startDate"`
	EndDate   string         `json:"endDate"`
	Page      PageConditions `json:"page"`
}

// MemberFilter restricts a search to the events one member caused. For
// memberType TOAST, emailAddress is required and userCode must be absent;
// for IAM, userCode is required and emailAddress must be absent.
type MemberFilter struct {
	MemberType   string `json:"memberType,omitempty"`
	UserCode     string `json:"userCode,omitempty"`
	EmailAddress string `json:"emailAddress,omitempty"`
	IDNo         string `json:"idNo,omitempty"`
}

// Check applies the documented member rules.
func (m *MemberFilter) Check() error {
	switch m.MemberType {
	case MemberTOAST:
		if m.EmailAddress == "" {
			return fmt.Errorf("memberType TOAST requires emailAddress")
		}
		if m.UserCode != "" {
			return fmt.Errorf("memberType TOAST must not have userCode")
		}
	case MemberIAM:
		if m.UserCode == "" {
			return fmt.Errorf("memberType IAM requires userCode")
		}
		if m.EmailAddress != "" {
			return fmt.Errorf("memberType IAM must not have emailAddress")
		}
	default:
		return fmt.Errorf("memberType must be TOAST or IAM")
	}
	return nil
}

// PageConditions is the request's page object.
type PageConditions struct {
	SortBy string `json:"sortBy,omitempty"`
	Limit  int    `json:"limit"`
	Page   int    `json:"page"`
}

// RequestTimeLayout is how startDate/endDate are sent: ISO-8601 UTC with milliseconds.
const RequestTimeLayout = "2006-01-02T15:04:05.000Z"

// EventTimeLayout is how the API writes eventTime: an offset without a colon.
const EventTimeLayout = "2006-01-02T15:04:05.000-0700"

// FormatRequestTime renders t as startDate/endDate expect.
func FormatRequestTime(t time.Time) string { return t.UTC().Format(RequestTimeLayout) }

// FormatEventTime renders t as the API writes eventTime.
func FormatEventTime(t time.Time) string { return t.UTC().Format(EventTimeLayout) }

// ParseEventTime parses an item's eventTime. The documented form is
// 2019-09-04T10:31:49.348+0000; an RFC 3339 offset (+09:00 or Z) and any
// number of fraction digits are accepted too. Anything else is an error.
func ParseEventTime(s string) (time.Time, error) {
	if len(s) < 20 || s[10] != 'T' {
		return time.Time{}, fmt.Errorf("eventTime %q is not ISO-8601", truncate(s, 64))
	}
	// time.Parse accepts a fraction after the seconds even when the
	// layout has none, so these layouts cover .348, .348123 and none.
	if t, err := time.Parse("2006-01-02T15:04:05-0700", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("eventTime %q is not ISO-8601 with an offset (2019-09-04T10:31:49.348+0000)", truncate(s, 64))
}

// SearchPath returns the request path for a version and appKey.
func SearchPath(version, appKey string) string {
	return "/cloud-trail/" + version + "/appkeys/" + appKey + "/events/search"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// normalizeVersion maps v1, v1.0, v2, v2.0 to the path form.
func normalizeVersion(v string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "v1", "v1.0", "1", "1.0":
		return VersionV1, true
	case "v2", "v2.0", "2", "2.0":
		return VersionV2, true
	}
	return "", false
}
