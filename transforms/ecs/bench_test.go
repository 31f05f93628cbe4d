package ecs

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Realistic items of about 900 bytes, as the APIs send them.
var (
	benchNCP = []byte(`{"historyId":"6712f0a1e2a352720c5a0003","nrn":"nrn:PUB:Account::2401234:SubAccount/2345678","eventTime":1730432461123,"platformType":"BOTH","productName":"Account","productDisplayName":"Account","regionCode":"","regionDisplayName":"Common","resourceType":"SubAccount","resourceId":"2345678","resourceName":"dev-park","actionDisplayName":"Login","actionResultType":"SUCCESS","actionUserType":"Sub","actionSubAccountNo":2345678,"sourceType":"PORTAL","sourceIp":"198.51.100.14","productData":{"twoFactorLoginType":"PHONE","twoFactorLoginManagerName":"*dong Hong","twoFactorLoginInfo":"+82-010********","clientIpCountry":"KR","isTwoSetFactorLogin":"true","isSuccess":"true","clientIp":"198.51.100.14","loginLevel":"2","userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0","userType":"SUB","userName":"dev.park@example.co.kr"}}`)
	benchNHN = []byte(`{"eventTime":"2024-10-10T03:09:45.024+0000","userIdNo":"8f0c2b7e-1d2a-4c55-9e61-3b7a9a0c1d11","userIp":"203.0.113.45","userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36","userName":"Kim Minsu","userId":"minsu.kim@example.com","eventSourceType":"CONSOLE","productId":"Tc9fYyGm","region":"KR1","orgId":"Q2mVxW8eT4rYu1Io","projectId":"pJ7kL0aZ","projectName":"payments-prod","appKey":"AbCdEfGhIjKlMnOp","tenantId":"6b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e","eventId":"event_id.iam.member.role.update","eventLogUuid":"5a1d6a8e-2f3b-4c1d-9e8f-7a6b5c4d3e21","request":"{\"id\":\"2\",\"productId\":\"M0XnzOFE\",\"uuid\":\"9c30dff8-53ba-4f18-8b44-22ab3b1678d7\"}","response":"{\"header\":{\"resultCode\":0,\"resultMessage\":\"SUCCESS\",\"isSuccessful\":true}}","eventTarget":{"targetMembers":[{"idNo":"9c30dff8-53ba-4f18-8b44-22ab3b1678d7","name":"Lim kkukjeong","userCode":"test_user","emailAddress":"jiwoo.park@example.com"}]}}`)
)

// BenchmarkECS measures Process alone: the raw items are parsed outside
// the timer, a batch of 500 at a time, as the engine hands them over, and
// the collector is run before each batch so the parser's garbage is not
// billed to the mapping.
func BenchmarkECS(b *testing.B) {
	b.Run("ncp", func(b *testing.B) { benchMap(b, DatasetNCP, benchNCP, false) })
	b.Run("nhn", func(b *testing.B) { benchMap(b, DatasetNHN, benchNHN, false) })
}

// BenchmarkParseAndECS measures parsing the NDJSON line plus mapping, GC
// included: what the ecs transform adds to a file source is this minus
// BenchmarkParse.
func BenchmarkParseAndECS(b *testing.B) {
	b.Run("ncp", func(b *testing.B) { benchMap(b, DatasetNCP, benchNCP, true) })
	b.Run("nhn", func(b *testing.B) { benchMap(b, DatasetNHN, benchNHN, true) })
}

// BenchmarkParse is the baseline of BenchmarkParseAndECS.
func BenchmarkParse(b *testing.B) {
	for _, raw := range [][]byte{benchNCP, benchNHN} {
		name := "ncp"
		if len(raw) == len(benchNHN) {
			name = "nhn"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			start := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := plugins.ParseObject(raw); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - start
			b.StopTimer()
			reportRates(b, cpu)
		})
	}
}

func benchMap(b *testing.B, ds string, raw []byte, withParse bool) {
	tr, err := newTransform(plugins.NopSettings("ecs"), defaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	const batch = 500
	events := make([]*plugins.Event, batch)
	received := time.Now()
	fill := func() {
		for i := range events {
			o, err := plugins.ParseObject(raw)
			if err != nil {
				b.Fatal(err)
			}
			events[i] = &plugins.Event{Fields: o, Meta: plugins.Meta{Dataset: ds, Received: received}}
		}
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		var start time.Duration
		if withParse {
			start = cpuTime()
			fill()
		} else {
			b.StopTimer()
			fill()
			runtime.GC()
			b.StartTimer()
			start = cpuTime()
		}
		if _, err := tr.Process(context.Background(), events[:n]); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - start
	}
	b.StopTimer()
	reportRates(b, cpu)
}

// reportRates adds events/s (wall clock) and, because a loaded machine
// makes wall-clock figures noisy, the process CPU time per event and the
// events per CPU-second it implies (per core).
func reportRates(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
}

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
