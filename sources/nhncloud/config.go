package nhncloud

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Config is the `nhncloud_cloudtrail` source's configuration.
type Config struct {
	// Endpoint is the API host of the region, as NHN's console shows it
	// (scheme://host, optionally with a path prefix). Required.
	Endpoint string `koanf:"endpoint"`
	// APIVersion is v1 or v2 (v2 adds the user access key headers).
	APIVersion string `koanf:"api_version"`
	// AppKey identifies the CloudTrail service; it travels in the URL path.
	AppKey plugins.Secret `koanf:"app_key"`
	// UserAccessKeyID and SecretAccessKey authenticate v2 requests.
	UserAccessKeyID plugins.Secret `koanf:"user_access_key_id"`
	SecretAccessKey plugins.Secret `koanf:"secret_access_key"`
	// EventIDs, when set, restricts collection to these event ids: one
	// query per id and window. Empty: every event, eventId omitted.
	EventIDs []string `koanf:"event_ids"`
	// Member restricts collection to the events one member caused.
	Member MemberConfig `koanf:"member"`
	// PageSize is page.limit, 1..1000.
	PageSize int `koanf:"page_size"`
	// Interval is the time between polls once caught up.
	Interval time.Duration `koanf:"interval"`
	// Lookback is where a source without a checkpoint starts.
	Lookback time.Duration `koanf:"lookback"`
	// Overlap is re-read before the checkpoint on every poll, for late events.
	Overlap time.Duration `koanf:"overlap"`
	// Timeout bounds one request.
	Timeout time.Duration `koanf:"timeout"`
	// MaxRetries bounds the retries of one request; -1 retries forever.
	MaxRetries int `koanf:"max_retries"`
	// RateLimit is the most requests per second the source sends.
	RateLimit float64 `koanf:"rate_limit"`
}

// MemberConfig is the optional member filter. For member_type TOAST,
// email_address is required and user_code must be empty; for IAM,
// user_code is required and email_address must be empty. id_no alone
// filters by the member's uuid.
type MemberConfig struct {
	MemberType   string `koanf:"member_type"`
	UserCode     string `koanf:"user_code"`
	EmailAddress string `koanf:"email_address"`
	IDNo         string `koanf:"id_no"`
}

// IsZero reports whether no member filter is configured.
func (m MemberConfig) IsZero() bool { return m == MemberConfig{} }

// maxLookback is NHN's retention: events are kept for 3 months.
const maxLookback = 90 * 24 * time.Hour

func defaultConfig() *Config {
	return &Config{
		APIVersion: "v2",
		PageSize:   MaxPageLimit,
		Interval:   time.Minute,
		Lookback:   720 * time.Hour,
		Overlap:    10 * time.Minute,
		Timeout:    30 * time.Second,
		MaxRetries: -1,
		RateLimit:  5,
	}
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, plugins.FieldErrorf(key, format, args...)) }
	if c.Endpoint == "" {
		add("endpoint", "is required: the CloudTrail API host of your region as NHN's console shows it")
	} else if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		add("endpoint", "must be an http(s) URL without query, such as https://<cloudtrail api host>")
	}
	v, ok := normalizeVersion(c.APIVersion)
	if !ok || (c.APIVersion != "v1" && c.APIVersion != "v2" && c.APIVersion != VersionV1 && c.APIVersion != VersionV2) {
		add("api_version", "must be v1 or v2, got %q", c.APIVersion)
	}
	if !c.AppKey.IsSet() {
		add("app_key", "is required")
	} else if strings.ContainsAny(c.AppKey.Reveal(), "/?#% \t\r\n") {
		add("app_key", "must not contain '/', '?', '#', '%%' or whitespace")
	}
	if ok && v == VersionV2 {
		if !c.UserAccessKeyID.IsSet() {
			add("user_access_key_id", "is required with api_version v2")
		}
		if !c.SecretAccessKey.IsSet() {
			add("secret_access_key", "is required with api_version v2")
		}
	}
	seen := map[string]bool{}
	for i, id := range c.EventIDs {
		switch {
		case strings.TrimSpace(id) == "":
			add("event_ids", "item %d is empty", i)
		case seen[id]:
			add("event_ids", "%q is listed twice", id)
		}
		seen[id] = true
	}
	if err := c.Member.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PageSize < 1 || c.PageSize > MaxPageLimit {
		add("page_size", "must be between 1 and %d, got %d", MaxPageLimit, c.PageSize)
	}
	if c.Interval <= 0 {
		add("interval", "must be positive")
	}
	if c.Lookback <= 0 || c.Lookback > maxLookback {
		add("lookback", "must be positive and at most 2160h (NHN keeps events for 3 months), got %s", c.Lookback)
	}
	if c.Overlap < 0 {
		add("overlap", "must not be negative")
	} else if c.Lookback > 0 && c.Overlap >= c.Lookback {
		add("overlap", "must be shorter than lookback")
	}
	if c.Timeout <= 0 {
		add("timeout", "must be positive")
	}
	if c.MaxRetries < -1 {
		add("max_retries", "must be -1 (forever) or at least 0, got %d", c.MaxRetries)
	}
	if c.RateLimit <= 0 {
		add("rate_limit", "must be positive (requests per second), got %g", c.RateLimit)
	}
	return errors.Join(errs...)
}

func (m MemberConfig) validate() error {
	if m.IsZero() {
		return nil
	}
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, plugins.FieldErrorf("member."+key, format, args...))
	}
	switch strings.ToUpper(m.MemberType) {
	case "":
		if m.UserCode != "" || m.EmailAddress != "" {
			add("member_type", "is required with user_code or email_address: TOAST or IAM")
		}
	case MemberTOAST:
		if m.EmailAddress == "" {
			add("email_address", "is required with member_type TOAST")
		}
		if m.UserCode != "" {
			add("user_code", "must be empty with member_type TOAST (use email_address)")
		}
	case MemberIAM:
		if m.UserCode == "" {
			add("user_code", "is required with member_type IAM")
		}
		if m.EmailAddress != "" {
			add("email_address", "must be empty with member_type IAM (use user_code)")
		}
	default:
		add("member_type", "must be TOAST or IAM, got %q", m.MemberType)
	}
	return errors.Join(errs...)
}

// filter returns the request's member object and top-level idNo.
func (m MemberConfig) filter() (*MemberFilter, string) {
	if m.IsZero() {
		return nil, ""
	}
	if m.MemberType == "" {
		return nil, m.IDNo
	}
	return &MemberFilter{
		MemberType:   strings.ToUpper(m.MemberType),
		UserCode:     m.UserCode,
		EmailAddress: m.EmailAddress,
		IDNo:         m.IDNo,
	}, ""
}
