package syslog

import (
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// BenchmarkEncode measures building one RFC 5424 message from a 1 KB ECS
// document, per payload.
func BenchmarkEncode(b *testing.B) {
	for _, payload := range []string{"json", "cef", "leef"} {
		b.Run(payload, func(b *testing.B) {
			o := newTestOutput(b, func(c *Config) { c.Payload = payload })
			ev := testEvent("bench", 1, 1024)
			buf := o.enc.appendMessage(nil, ev)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				buf = o.enc.appendMessage(buf[:0], ev)
			}
		})
	}
}

// BenchmarkRsyslog measures messages per second to the test rsyslog on
// loopback, 1 KB JSON documents in batches of 500. One op is one message.
func BenchmarkRsyslog(b *testing.B) {
	env := rsyslog(b)
	for _, tc := range []transportCase{transportCases[1], transportCases[5]} {
		b.Run(tc.name, func(b *testing.B) {
			host := runHost("bench-" + tc.name)
			o := newTestOutput(b, func(c *Config) { tc.config(env, c); c.Hostname = host })
			const batch = 500
			events := make([]*plugins.Event, batch)
			for i := range events {
				events[i] = testEvent(host, i, 1024)
			}
			b.SetBytes(int64(len(o.enc.appendMessage(nil, events[0]))))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			sent := 0
			for sent < b.N {
				k := min(batch, b.N-sent)
				if err := o.Write(b.Context(), events[:k]); err != nil {
					b.Fatal(err)
				}
				sent += k
			}
			b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
