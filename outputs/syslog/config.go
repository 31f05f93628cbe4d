package syslog

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Config is the `type: syslog` output's configuration.
type Config struct {
	// Address is udp://, tcp://, tls:// or relp:// followed by host:port.
	Address string `koanf:"address"`
	// Format is the syslog header: rfc5424 or rfc3164.
	Format string `koanf:"format"`
	// Payload is the message body: json (the ECS document), cef or leef.
	Payload string `koanf:"payload"`
	// Framing is octet-counting (RFC 6587) or newline, for tcp:// and tls://.
	Framing string `koanf:"framing"`
	// Facility is a facility name (log_audit, local0, …) or number 0..23.
	Facility string `koanf:"facility"`
	// Hostname is the HOSTNAME field; empty means the machine's name.
	Hostname string `koanf:"hostname"`
	// AppName is the APP-NAME field (the TAG in RFC 3164).
	AppName string `koanf:"app_name"`
	// SDID is the SD-ID of the structured-data element carrying event.id,
	// event.dataset and event.outcome (RFC 5424 only).
	SDID string `koanf:"sd_id"`
	// MaxMessageBytes bounds one syslog message (header and payload, without
	// framing); 0 means 65536 on stream transports and 8192 on UDP. A longer
	// message is a permanent error for its event (dead letter), never cut.
	MaxMessageBytes int `koanf:"max_message_bytes"`
	// ConnectTimeout bounds a connection attempt (TCP, TLS handshake, RELP open).
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// WriteTimeout bounds each network write and, on RELP, the wait for the
	// next acknowledgement.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// Reconnect is the backoff between failed connection attempts.
	Reconnect ReconnectConfig `koanf:"reconnect"`
	// TLS configures tls:// connections.
	TLS TLSConfig `koanf:"tls"`
	// RELP configures relp:// sessions.
	RELP RELPConfig `koanf:"relp"`
	// CEF configures the cef payload.
	CEF CEFConfig `koanf:"cef"`
	// LEEF configures the leef payload.
	LEEF LEEFConfig `koanf:"leef"`
}

// ReconnectConfig is the backoff between failed connection attempts; it
// doubles from InitialBackoff up to MaxBackoff, with jitter.
type ReconnectConfig struct {
	InitialBackoff time.Duration `koanf:"initial_backoff"`
	MaxBackoff     time.Duration `koanf:"max_backoff"`
}

// TLSConfig holds the client side of RFC 5425 syslog over TLS.
type TLSConfig struct {
	// CAFile is a PEM bundle of CAs that sign the receiver's certificate;
	// empty means the system's roots.
	CAFile string `koanf:"ca_file"`
	// CertFile and KeyFile are a client certificate, for receivers that
	// require one (mutual TLS).
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// ServerName is checked against the receiver's certificate; empty means
	// the host of Address.
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

func (t TLSConfig) isSet() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// RELPConfig configures relp:// sessions.
type RELPConfig struct {
	// WindowSize is the number of messages sent before their
	// acknowledgements arrive (pipelining).
	WindowSize int `koanf:"window_size"`
}

// CEFConfig maps ECS fields onto an ArcSight Common Event Format message.
// Field values are dotted ECS paths, or one of the computed values
// $severity, $dataset and $source (the event's source component).
type CEFConfig struct {
	Vendor  string `koanf:"vendor"`
	Product string `koanf:"product"`
	Version string `koanf:"version"`
	// SignatureID and Name are the ECS fields of the two header columns.
	SignatureID string `koanf:"signature_id"`
	Name        string `koanf:"name"`
	// Extensions maps CEF extension keys to ECS fields; a key mapped to ""
	// is left out. rt, start and end are sent as epoch milliseconds.
	Extensions map[string]string `koanf:"extensions"`
	// CustomStrings become cs1..cs6 with their csNLabel.
	CustomStrings []CustomString `koanf:"custom_strings"`
}

// CustomString is one CEF csN / csNLabel pair.
type CustomString struct {
	Label string `koanf:"label"`
	Field string `koanf:"field"`
}

// LEEFConfig maps ECS fields onto an IBM QRadar LEEF 2.0 message.
type LEEFConfig struct {
	Vendor  string `koanf:"vendor"`
	Product string `koanf:"product"`
	Version string `koanf:"version"`
	// EventID is the ECS field of the EventID header column.
	EventID string `koanf:"event_id"`
	// Delimiter separates attributes: one character, "\t", or a hex code
	// such as x09 or 0x5E.
	Delimiter string `koanf:"delimiter"`
	// Attributes maps LEEF keys to ECS fields; a key mapped to "" is left
	// out. devTime is formatted per devTimeFormat, which is added for it.
	Attributes map[string]string `koanf:"attributes"`
}

func defaultConfig() *Config {
	return &Config{
		Format:         "rfc5424",
		Payload:        "json",
		Framing:        "octet-counting",
		Facility:       "log_audit",
		AppName:        "forwarder",
		SDID:           "forwarder@32473",
		ConnectTimeout: 10 * time.Second,
		WriteTimeout:   10 * time.Second,
		Reconnect:      ReconnectConfig{InitialBackoff: 250 * time.Millisecond, MaxBackoff: 30 * time.Second},
		RELP:           RELPConfig{WindowSize: 128},
		CEF: CEFConfig{
			Vendor: "AuditForwarder", Product: "forwarder", Version: "1.0",
			SignatureID: "event.action", Name: "event.action",
			Extensions: map[string]string{
				"rt":                       "@timestamp",
				"src":                      "source.ip",
				"suser":                    "user.name",
				"act":                      "event.action",
				"outcome":                  "event.outcome",
				"externalId":               "event.id",
				"requestClientApplication": "user_agent.original",
			},
			CustomStrings: []CustomString{
				{Label: "dataset", Field: "event.dataset"},
				{Label: "provider", Field: "event.provider"},
				{Label: "cloudProvider", Field: "cloud.provider"},
				{Label: "cloudRegion", Field: "cloud.region"},
				{Label: "cloudAccountId", Field: "cloud.account.id"},
				{Label: "eventCode", Field: "event.code"},
			},
		},
		LEEF: LEEFConfig{
			Vendor: "AuditForwarder", Product: "forwarder", Version: "1.0",
			EventID: "event.action", Delimiter: "^",
			Attributes: map[string]string{
				"devTime":     "@timestamp",
				"src":         "source.ip",
				"usrName":     "user.name",
				"cat":         "event.category",
				"sev":         "$severity",
				"outcome":     "event.outcome",
				"externalId":  "event.id",
				"dataset":     "event.dataset",
				"userAgent":   "user_agent.original",
				"cloudRegion": "cloud.region",
			},
		},
	}
}

// facilities are the RFC 5424 facility codes by name (with the common aliases).
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
	"news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12,
	"log_audit": 13, "audit": 13, "security": 13, "log_alert": 14, "alert": 14,
	"clock": 15, "cron2": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// facilityCode resolves a facility name or number.
func facilityCode(s string) (int, bool) {
	if n, ok := facilities[strings.ToLower(s)]; ok {
		return n, true
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 23 {
		return n, true
	}
	return 0, false
}

// target is a parsed Address.
type target struct {
	scheme string // udp, tcp, tls, relp
	host   string // host:port
}

func parseAddress(addr string) (target, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return target{}, errors.New("must look like tcp://host:port (schemes udp, tcp, tls, relp)")
	}
	if u.User != nil {
		return target{}, errors.New("must not hold credentials: syslog has no authentication in the address")
	}
	switch u.Scheme {
	case "udp", "tcp", "tls", "relp":
	default:
		return target{}, fmt.Errorf("scheme must be udp, tcp, tls or relp, got %q", u.Scheme)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return target{}, fmt.Errorf("must be scheme://host:port with nothing after the port, got %q", addr)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return target{}, fmt.Errorf("must include a host and a port, got %q", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return target{}, fmt.Errorf("port must be 1..65535, got %q", port)
	}
	return target{scheme: u.Scheme, host: u.Host}, nil
}

func (c *Config) stream() bool {
	t, err := parseAddress(c.Address)
	return err != nil || t.scheme != "udp"
}

// maxMessageBytes returns the effective limit.
func (c *Config) maxMessageBytes() int {
	if c.MaxMessageBytes > 0 {
		return c.MaxMessageBytes
	}
	if c.stream() {
		return 65536
	}
	return 8192
}

// hostname returns the configured or the machine's host name.
func (c *Config) hostname() string {
	if c.Hostname != "" {
		return c.Hostname
	}
	h, err := os.Hostname()
	if err != nil || h == "" || !printASCII(h) {
		return "-"
	}
	if len(h) > 255 {
		h = h[:255]
	}
	return h
}

// printASCII reports whether s is non-empty PRINTUSASCII (%d33-126).
func printASCII(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

var (
	cefKeyRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)
	leefKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,62}$`)
	fieldRE   = regexp.MustCompile(`^(@?[A-Za-z0-9_-]+(\.[A-Za-z0-9_@-]+)*|\$severity|\$dataset|\$source)$`)
)

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	t, err := parseAddress(c.Address)
	switch {
	case c.Address == "":
		errs = append(errs, plugins.FieldErrorf("address", "is required: udp://, tcp://, tls:// or relp:// followed by host:port"))
	case err != nil:
		errs = append(errs, plugins.FieldErrorf("address", "%s", err.Error()))
	}
	if c.Format != "rfc5424" && c.Format != "rfc3164" {
		errs = append(errs, plugins.FieldErrorf("format", "must be rfc5424 or rfc3164, got %q", c.Format))
	}
	if c.Payload != "json" && c.Payload != "cef" && c.Payload != "leef" {
		errs = append(errs, plugins.FieldErrorf("payload", "must be json, cef or leef, got %q", c.Payload))
	}
	if c.Framing != "octet-counting" && c.Framing != "newline" {
		errs = append(errs, plugins.FieldErrorf("framing", "must be octet-counting or newline, got %q", c.Framing))
	}
	if _, ok := facilityCode(c.Facility); !ok {
		errs = append(errs, plugins.FieldErrorf("facility", "must be a facility name (kern, user, …, log_audit, local0..local7) or 0..23, got %q", c.Facility))
	}
	if c.Hostname != "" && (!printASCII(c.Hostname) || len(c.Hostname) > 255) {
		errs = append(errs, plugins.FieldErrorf("hostname", "must be 1..255 printable ASCII characters without spaces"))
	}
	if !printASCII(c.AppName) || len(c.AppName) > 48 {
		errs = append(errs, plugins.FieldErrorf("app_name", "must be 1..48 printable ASCII characters without spaces, got %q", c.AppName))
	} else if c.Format == "rfc3164" && (len(c.AppName) > 32 || strings.ContainsAny(c.AppName, "[]:")) {
		errs = append(errs, plugins.FieldErrorf("app_name", "must be at most 32 characters without [ ] : for rfc3164, got %q", c.AppName))
	}
	if !validSDName(c.SDID) {
		errs = append(errs, plugins.FieldErrorf("sd_id", "must be 1..32 printable ASCII characters other than space, = ] and \" (e.g. name@32473), got %q", c.SDID))
	}
	if c.MaxMessageBytes != 0 {
		maxLimit := 16 << 20
		if err == nil && t.scheme == "udp" {
			maxLimit = 65507
		}
		if c.MaxMessageBytes < 480 || c.MaxMessageBytes > maxLimit {
			errs = append(errs, plugins.FieldErrorf("max_message_bytes", "must be 0 (transport default) or between 480 and %d, got %d", maxLimit, c.MaxMessageBytes))
		}
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, plugins.FieldErrorf("connect_timeout", "must be positive"))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, plugins.FieldErrorf("write_timeout", "must be positive"))
	}
	if c.Reconnect.InitialBackoff <= 0 || c.Reconnect.MaxBackoff < c.Reconnect.InitialBackoff {
		errs = append(errs, plugins.FieldErrorf("reconnect.initial_backoff", "must be positive and not above reconnect.max_backoff"))
	}
	if c.RELP.WindowSize < 1 || c.RELP.WindowSize > 65536 {
		errs = append(errs, plugins.FieldErrorf("relp.window_size", "must be between 1 and 65536, got %d", c.RELP.WindowSize))
	}
	if err == nil && t.scheme != "tls" && c.TLS.isSet() {
		errs = append(errs, plugins.FieldErrorf("tls", "is only used with tls:// addresses, got %s://", t.scheme))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, plugins.FieldErrorf("tls.cert_file", "and tls.key_file must be set together"))
	}
	if c.Payload == "cef" {
		errs = append(errs, c.CEF.validate()...)
	}
	if c.Payload == "leef" {
		errs = append(errs, c.LEEF.validate()...)
	}
	return errors.Join(errs...)
}

func validSDName(s string) bool {
	if !printASCII(s) || len(s) > 32 {
		return false
	}
	return !strings.ContainsAny(s, `= ]"`)
}

func (c *CEFConfig) validate() []error {
	var errs []error
	for _, f := range []struct{ key, val string }{{"vendor", c.Vendor}, {"product", c.Product}, {"version", c.Version}} {
		if f.val == "" || len(f.val) > 255 || strings.ContainsAny(f.val, "\r\n") {
			errs = append(errs, plugins.FieldErrorf("cef."+f.key, "must be 1..255 characters without line breaks"))
		}
	}
	for _, f := range []struct{ key, val string }{{"signature_id", c.SignatureID}, {"name", c.Name}} {
		if !fieldRE.MatchString(f.val) {
			errs = append(errs, plugins.FieldErrorf("cef."+f.key, "must be a dotted ECS field path such as event.action, got %q", f.val))
		}
	}
	for _, k := range sortedKeys(c.Extensions) {
		v := c.Extensions[k]
		if !cefKeyRE.MatchString(k) {
			errs = append(errs, plugins.FieldErrorf("cef.extensions."+k, "is not a valid CEF key (letters, digits, _)"))
		} else if csKeyRE.MatchString(k) {
			errs = append(errs, plugins.FieldErrorf("cef.extensions."+k, "cs1..cs6 and their labels come from cef.custom_strings"))
		}
		if v != "" && !fieldRE.MatchString(v) {
			errs = append(errs, plugins.FieldErrorf("cef.extensions."+k, "must be a dotted ECS field path or \"\", got %q", v))
		}
	}
	if len(c.CustomStrings) > 6 {
		errs = append(errs, plugins.FieldErrorf("cef.custom_strings", "may hold at most 6 entries (cs1..cs6), got %d", len(c.CustomStrings)))
	}
	for i, cs := range c.CustomStrings {
		if cs.Label == "" || strings.ContainsAny(cs.Label, "\r\n") {
			errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("cef.custom_strings[%d].label", i), "must be set, without line breaks"))
		}
		if !fieldRE.MatchString(cs.Field) {
			errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("cef.custom_strings[%d].field", i), "must be a dotted ECS field path, got %q", cs.Field))
		}
	}
	return errs
}

var csKeyRE = regexp.MustCompile(`^cs[1-6](Label)?$`)

func (c *LEEFConfig) validate() []error {
	var errs []error
	for _, f := range []struct{ key, val string }{{"vendor", c.Vendor}, {"product", c.Product}, {"version", c.Version}} {
		if f.val == "" || len(f.val) > 255 || strings.ContainsAny(f.val, "\r\n") {
			errs = append(errs, plugins.FieldErrorf("leef."+f.key, "must be 1..255 characters without line breaks"))
		}
	}
	if !fieldRE.MatchString(c.EventID) {
		errs = append(errs, plugins.FieldErrorf("leef.event_id", "must be a dotted ECS field path such as event.action, got %q", c.EventID))
	}
	d, err := parseDelimiter(c.Delimiter)
	if err != nil {
		errs = append(errs, plugins.FieldErrorf("leef.delimiter", "%s", err.Error()))
	}
	for _, k := range sortedKeys(c.Attributes) {
		v := c.Attributes[k]
		if !leefKeyRE.MatchString(k) || (err == nil && strings.IndexByte(k, d) >= 0) {
			errs = append(errs, plugins.FieldErrorf("leef.attributes."+k, "is not a valid LEEF key (letters, digits, _ . -, not the delimiter)"))
		}
		if k == "devTimeFormat" {
			errs = append(errs, plugins.FieldErrorf("leef.attributes."+k, "is added automatically with devTime"))
		}
		if v != "" && !fieldRE.MatchString(v) {
			errs = append(errs, plugins.FieldErrorf("leef.attributes."+k, "must be a dotted ECS field path or \"\", got %q", v))
		}
	}
	return errs
}

// parseDelimiter reads a LEEF delimiter: one printable ASCII character
// other than a letter, digit, '=', '\\' or '|', "\t", or a hex code (x09, 0x5E).
func parseDelimiter(s string) (byte, error) {
	var d byte
	switch {
	case s == `\t`:
		d = '\t'
	case len(s) == 1:
		d = s[0]
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "x") || strings.HasPrefix(s, "0X") || strings.HasPrefix(s, "X"):
		h := s[1:]
		if s[0] == '0' {
			h = s[2:]
		}
		n, err := strconv.ParseUint(h, 16, 8)
		if err != nil || len(h) == 0 || len(h) > 2 {
			return 0, fmt.Errorf("must be one character, \\t or a hex code such as x09, got %q", s)
		}
		d = byte(n)
	default:
		return 0, fmt.Errorf("must be one character, \\t or a hex code such as x09, got %q", s)
	}
	if d != '\t' && (d < 33 || d > 126) {
		return 0, fmt.Errorf("must be a tab or a printable ASCII character, got %q", s)
	}
	if (d >= '0' && d <= '9') || (d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || d == '=' || d == '\\' || d == '|' {
		return 0, fmt.Errorf("must not be a letter, a digit, '=', '\\' or '|', got %q", s)
	}
	return d, nil
}
