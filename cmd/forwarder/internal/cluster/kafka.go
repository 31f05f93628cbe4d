// Package cluster runs the forwarder as one of many instances sharing the
// sources through Kafka, the way Kafka Connect distributes connectors:
// group membership over a coordination topic with one partition per
// ownership slot (cooperative-sticky balancing) decides which instance runs
// which source, and the sources' checkpoints live in a compacted state
// topic (checkpoint.KafkaStore) whose per-source transactional producers
// fence a stale owner.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
)

// ClientOpts returns the franz-go connection options of `cluster.kafka`:
// seed brokers, client id, TLS and SASL.
func ClientOpts(k config.ClusterKafka, log *slog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ClientID(k.ClientID)}
	if log != nil {
		opts = append(opts, kgo.WithLogger(kgoLogger{log}))
	}
	if k.TLS.Enabled {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: k.TLS.ServerName, InsecureSkipVerify: k.TLS.InsecureSkipVerify} //nolint:gosec // the user's explicit choice, logged
		if k.TLS.CAFile != "" {
			pem, err := os.ReadFile(k.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("cluster.kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("cluster.kafka.tls.ca_file %s: no PEM certificate found", k.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		if k.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(k.TLS.CertFile, k.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("cluster.kafka.tls.cert_file/key_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		if k.TLS.InsecureSkipVerify && log != nil {
			log.Warn("cluster.kafka.tls.insecure_skip_verify is true: the brokers' certificates are not verified; use it only for testing")
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	user, pass := k.SASL.Username, k.SASL.Password.Reveal()
	switch k.SASL.MechanismName() {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	}
	return opts, nil
}

// kgoLogger routes franz-go's warnings and errors to slog (its info and
// debug chatter stays out).
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	l.log.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
