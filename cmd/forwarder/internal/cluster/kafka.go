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
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/plugins/kafkaconfig"
)

// ClientOpts returns the franz-go connection options of `cluster.kafka`:
// seed brokers, client id, TLS and SASL.
func ClientOpts(k config.ClusterKafka, log *slog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ClientID(k.ClientID)}
	if log != nil {
		opts = append(opts, kgo.WithLogger(kgoLogger{log}))
	}
	if k.TLS.Enabled && k.TLS.InsecureSkipVerify && log != nil {
		log.Warn("cluster.kafka.tls.insecure_skip_verify is true: the brokers' certificates are not verified; use it only for testing")
	}
	conn, err := kafkaconfig.ClientOpts(&k.TLS, &k.SASL, "cluster.kafka.")
	if err != nil {
		return nil, err
	}
	opts = append(opts, conn...)
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
