package kafkaconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ClientOpts returns the franz-go options of a `tls:` and a `sasl:` block:
// a TLS dialer when TLS is enabled, a SASL mechanism when one is set. key
// prefixes the config keys named in errors ("cluster.kafka." or "").
func ClientOpts(t *TLS, s *SASL, key string) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if t.Enabled {
		tc, err := t.Config(key)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := s.SASLMechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// Config returns the crypto/tls configuration of the block (TLS 1.2 or
// later). key prefixes the config keys named in errors.
func (t *TLS) Config(key string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // insecure_skip_verify is the user's explicit, loudly logged choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%stls.ca_file: %w", key, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%stls.ca_file %s: no PEM certificate found", key, t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%stls.cert_file/key_file: %w", key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// SASLMechanism returns the franz-go mechanism of the block, nil when none
// is set.
func (s *SASL) SASLMechanism() sasl.Mechanism {
	user, pass := s.Username, s.Password.Reveal()
	switch s.MechanismName() {
	case MechanismPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism()
	case MechanismSCRAM256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
	case MechanismSCRAM512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
	}
	return nil
}
