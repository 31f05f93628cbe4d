package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/checkpoint"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/cluster"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/engine"
)

// clusterOptions fills the engine options of cluster mode (a `cluster:`
// block): the checkpoint store in the compacted state topic and the
// ownership through group membership. Without the block it does nothing.
func clusterOptions(ctx context.Context, cfg *config.Config, log *slog.Logger, opts *engine.Options) error {
	c := cfg.Cluster
	if c == nil {
		return nil
	}
	if opts.Once {
		return errors.New("--once cannot be used in cluster mode: the instances share the sources and keep running")
	}
	client, err := cluster.ClientOpts(c.Kafka, log)
	if err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	store, err := checkpoint.OpenKafka(octx, checkpoint.KafkaOptions{
		Client: client, Group: c.Group, Topic: c.StateTopic, ReplicationFactor: c.ReplicationFactor, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("cluster: %w (brokers %v)", err, c.Kafka.Brokers)
	}
	opts.Store = store
	opts.ClusterBrokers = c.Kafka.Brokers
	opts.Ownership = cluster.NewMembership(cluster.MembershipOptions{
		Client: client, Group: c.Group, Topic: c.CoordinationTopic, InstanceID: c.InstanceID,
		SessionTimeout: c.SessionTimeout, HeartbeatInterval: c.HeartbeatInterval,
		// A revocation may drain for shutdown_timeout and then flush.
		RebalanceTimeout:  max(time.Minute, 2*cfg.ShutdownTimeout+15*time.Second),
		ReplicationFactor: c.ReplicationFactor, Logger: log,
	})
	return nil
}
