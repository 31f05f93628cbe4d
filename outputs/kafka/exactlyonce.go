package kafka

import (
	"context"
	"fmt"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/kafkaconfig"
)

var _ plugins.ExactlyOnceOutput = (*output)(nil)

// ExactlyOnceBrokers implements plugins.ExactlyOnceOutput: with
// exactly_once: true the engine writes this output's records for a source
// that feeds it alone in one Kafka transaction with the source's
// checkpoint (cluster mode); see cmd/forwarder/CLUSTER.md.
func (o *output) ExactlyOnceBrokers() []string {
	if !o.cfg.ExactlyOnce {
		return nil
	}
	return o.cfg.Brokers
}

// EncodeRecords implements plugins.ExactlyOnceOutput: the records Write
// would produce (topic, key, value, dataset and source headers, timestamp),
// not produced. The topic is checked (and created with create_topic) as
// Write does; an event whose topic cannot be rendered is a Permanent
// failure, a missing topic a retriable one.
func (o *output) EncodeRecords(ctx context.Context, events []*plugins.Event) ([]plugins.KafkaRecord, error) {
	_, adm := o.client()
	if adm == nil {
		return nil, fmt.Errorf("kafka output is not started or already closed")
	}
	out := make([]plugins.KafkaRecord, 0, len(events))
	var be plugins.BatchError
	var curTopic string
	var curErr error
	checked := false
	for i, ev := range events {
		topic, err := o.topic.render(ev.Fields)
		if err == nil && !o.topic.static() {
			if terr := kafkaconfig.CheckTopicName(topic); terr != nil {
				err = fmt.Errorf("topic template %q: %w", o.topic.text, terr)
			}
		}
		if err != nil {
			o.m.errors.WithLabelValues("INVALID_TOPIC").Inc()
			be.Add(i, plugins.Permanent(err))
			continue
		}
		if !checked || topic != curTopic {
			curTopic, curErr, checked = topic, o.ensureTopic(ctx, adm, topic), true
		}
		if curErr != nil {
			// The whole batch waits for the topic: encoding is retried.
			return nil, curErr
		}
		r := plugins.KafkaRecord{Topic: topic, Value: ev.AppendJSON(nil), Timestamp: recordTime(ev)}
		if key, ok := o.key(ev); ok {
			r.Key = []byte(key)
		}
		for _, h := range o.recordHeaders(ev.Meta.Source, ev.Meta.Dataset) {
			r.Headers = append(r.Headers, plugins.KafkaHeader{Key: h.Key, Value: h.Value})
		}
		out = append(out, r)
	}
	return out, be.Err()
}
