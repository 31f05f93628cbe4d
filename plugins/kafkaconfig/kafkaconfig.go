// Package kafkaconfig holds the Kafka client settings that every part of the
// forwarder talking to Kafka shares — the kafka output, the kafka source and
// cluster mode — so their `tls:` and `sasl:` keys and the checks on brokers
// and topic names are the same everywhere.
package kafkaconfig

import (
	"errors"
	"fmt"
	"strings"

	"github.com/auditforwarder/forwarder/plugins"
)

// SASL mechanisms, in Kafka's spelling.
const (
	MechanismPlain     = "PLAIN"
	MechanismSCRAM256  = "SCRAM-SHA-256"
	MechanismSCRAM512  = "SCRAM-SHA-512"
	maxTopicNameLength = 249
)

// TLS is the `tls:` block.
type TLS struct {
	// Enabled turns TLS on; the other keys need it.
	Enabled bool `koanf:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates;
	// empty = the system roots.
	CAFile string `koanf:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key (mutual TLS).
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify disables certificate verification. Testing only.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// Validate implements plugins.Validator.
func (t *TLS) Validate() error {
	var errs []error
	if !t.Enabled {
		for _, f := range []struct {
			key string
			set bool
		}{
			{"ca_file", t.CAFile != ""}, {"cert_file", t.CertFile != ""}, {"key_file", t.KeyFile != ""},
			{"server_name", t.ServerName != ""}, {"insecure_skip_verify", t.InsecureSkipVerify},
		} {
			if f.set {
				errs = append(errs, plugins.FieldErrorf(f.key, "is set but tls.enabled is false; set enabled: true"))
			}
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, plugins.FieldErrorf("cert_file", "and key_file must be set together"))
	}
	return errors.Join(errs...)
}

// SASL is the `sasl:` block.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty = no SASL.
	Mechanism string `koanf:"mechanism"`
	// Username is the SASL user.
	Username string `koanf:"username"`
	// Password is the SASL password.
	Password plugins.Secret `koanf:"password"`
}

// MechanismName returns the mechanism in Kafka's upper-case spelling.
func (s *SASL) MechanismName() string { return strings.ToUpper(strings.TrimSpace(s.Mechanism)) }

// Validate implements plugins.Validator.
func (s *SASL) Validate() error {
	var errs []error
	switch s.MechanismName() {
	case "":
		if s.Username != "" || s.Password.IsSet() {
			errs = append(errs, plugins.FieldErrorf("mechanism", "is required when username or password is set (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"))
		}
		return errors.Join(errs...)
	case MechanismPlain, MechanismSCRAM256, MechanismSCRAM512:
	default:
		errs = append(errs, plugins.FieldErrorf("mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", s.Mechanism))
	}
	if s.Username == "" {
		errs = append(errs, plugins.FieldErrorf("username", "is required with sasl.mechanism"))
	}
	if !s.Password.IsSet() {
		errs = append(errs, plugins.FieldErrorf("password", "is required with sasl.mechanism"))
	}
	return errors.Join(errs...)
}

// CheckBroker checks that b is host:port with a numeric port.
func CheckBroker(b string) error {
	i := strings.LastIndexByte(b, ':')
	if i <= 0 || i == len(b)-1 {
		return fmt.Errorf("must be host:port, got %q", b)
	}
	for _, r := range b[i+1:] {
		if r < '0' || r > '9' {
			return fmt.Errorf("must be host:port with a numeric port, got %q", b)
		}
	}
	return nil
}

// CheckTopicName applies Kafka's topic name rules.
func CheckTopicName(t string) error {
	if t == "" {
		return errors.New("topic name is empty")
	}
	if t == "." || t == ".." {
		return fmt.Errorf("topic name %q is not allowed", t)
	}
	if len(t) > maxTopicNameLength {
		return fmt.Errorf("topic name is %d characters long; Kafka allows at most %d", len(t), maxTopicNameLength)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has %q; Kafka allows only ASCII letters, digits, '.', '_' and '-'", t, c)
		}
	}
	return nil
}
