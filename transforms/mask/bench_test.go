package mask

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Realistic ECS documents of about 1 KB with 6 to 8 addresses each, as
// the ecs transform writes them for the two APIs (one with NHN's request
// and response still JSON text).
var benchTemplates = []string{
	`{"@timestamp":"2026-03-14T09:26:53.589Z","event":{"id":"6712f0a1e2a352720c5a%04x","kind":"event","module":"ncloud","dataset":"ncloud.activity_tracer","provider":"Account","action":"Login","outcome":"success","category":["authentication"],"type":["start"],"created":"2026-03-14T09:27:00.001Z"},"cloud":{"provider":"ncloud","region":"KR","account":{"id":"2401234"},"service":{"name":"Account"}},"source":{"ip":"%[2]s","geo":{"country_iso_code":"KR"}},"user":{"name":"%[4]s","email":"%[4]s","domain":"navercorp.com"},"user_agent":{"original":"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"},"related":{"ip":["%[2]s","%[3]s"],"user":["%[4]s"]},"ecs":{"version":"9.1.0"},"ncloud":{"activity_tracer":{"nrn":"nrn:PUB:Account::2401234:Customer/static","platformType":"VPC","sourceType":"PORTAL","productData":{"clientIp":"%[2]s","proxyIp":"%[3]s","loginLevel":"1","userType":"CUSTOMER","twoFactorLoginType":"NONE"}}}}`,
	`{"@timestamp":"2026-03-14T09:31:02.114Z","event":{"id":"5a1d6a8e-2f3b-4c1d-9e8f-7a6b5c4d%04x","kind":"event","module":"nhncloud","dataset":"nhncloud.cloudtrail","provider":"iam","action":"iam.member.role.update","code":"event_id.iam.member.role.update","outcome":"success","category":["iam"],"type":["user","change"]},"cloud":{"provider":"nhncloud","region":"KR1","account":{"id":"Q2mVxW8eT4rYu1Io"},"project":{"id":"pJ7kL0aZ","name":"payments-prod"},"service":{"name":"iam"}},"source":{"ip":"%[2]s"},"user":{"id":"8f0c2b7e-1d2a-4c55-9e61-3b7a9a0c1d11","name":"%[4]s","full_name":"Kim Minsu","email":"%[4]s","target":{"name":"lee","email":"%[5]s"}},"related":{"ip":["%[2]s"],"user":["%[4]s","%[5]s"]},"ecs":{"version":"9.1.0"},"nhncloud":{"cloudtrail":{"eventSourceType":"CONSOLE","productId":"Tc9fYyGm","appKey":"AbCdEfGhIjKlMnOp","request":{"memberId":"m-1","roles":["PROJECT_ADMIN"],"emailAddress":"%[5]s"},"response":{"header":{"resultCode":0,"resultMessage":"SUCCESS","isSuccessful":true}}}}}`,
	`{"@timestamp":"2026-03-14T10:02:41.007Z","event":{"id":"9c2e41d0-77aa-4b1e-8f0e-%012x","kind":"event","module":"nhncloud","dataset":"nhncloud.cloudtrail","provider":"iaas","action":"iaas.instance.create","code":"event_id.iaas.instance.create","outcome":"failure"},"cloud":{"provider":"nhncloud","region":"KR2","project":{"id":"pJ7kL0aZ"}},"source":{"ip":"%[2]s"},"user":{"name":"%[4]s","email":"%[4]s"},"related":{"ip":["%[2]s","%[3]s"],"user":["%[4]s"]},"ecs":{"version":"9.1.0"},"nhncloud":{"cloudtrail":{"eventSourceType":"API","request":"{\"server\":{\"name\":\"api-01\",\"flavorRef\":\"u2.c2m4\",\"networks\":[{\"subnet\":\"10.0.1.0/24\",\"fixed_ip\":\"%[3]s\"}],\"metadata\":{\"owner\":\"%[4]s\"}}}","response":"{\"header\":{\"resultCode\":-1,\"resultMessage\":\"quota exceeded for %[4]s\",\"isSuccessful\":false}}"}}}`,
}

// benchDocs returns n documents whose addresses come from pools of the
// given sizes (a real stream repeats its users and their addresses).
func benchDocs(tb testing.TB, n, ips, emails int) ([]*plugins.Object, int) {
	r := rand.New(rand.NewPCG(1, 2))
	ip := func() string {
		k := r.IntN(ips)
		if k%5 == 0 {
			return fmt.Sprintf("2001:db8:%x:%x::%x", k>>8&0xffff, k&0xff, 1+k%7)
		}
		return fmt.Sprintf("%d.%d.%d.%d", 11+k>>16&0xff, k>>8&0xff, k&0xff, 1+k%250)
	}
	email := func() string { return fmt.Sprintf("user.%d+tag@navercorp.com", r.IntN(emails)) }
	docs := make([]*plugins.Object, n)
	size := 0
	for i := range docs {
		s := fmt.Sprintf(benchTemplates[i%len(benchTemplates)], i, ip(), ip(), email(), email())
		size += len(s)
		docs[i] = mustParse(tb, s)
	}
	return docs, size / n
}

func benchMask(b *testing.B, cfg *Config, ndocs, ips, emails int) {
	docs, size := benchDocs(b, ndocs, ips, emails)
	tr := newT(b, cfg)
	batch := make([]*plugins.Event, len(docs))
	for i := range batch {
		batch[i] = &plugins.Event{}
	}
	refill := func() {
		for i, d := range docs {
			batch[i].Fields = d.Clone()
		}
	}
	refill()
	if _, err := tr.Process(context.Background(), batch); err != nil { // warm the memo
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for done := 0; done < b.N; {
		b.StopTimer()
		refill()
		n := min(len(batch), b.N-done)
		b.StartTimer()
		c0 := cpuTime()
		if _, err := tr.Process(context.Background(), batch[:n]); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
		done += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// CPU time is what "per core" means on a shared machine, where wall
	// time also counts the other processes' turns.
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
}

// cpuTime returns the CPU time the process has used (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMask measures events per second on one core: defaults and hash
// mode, with addresses repeating as in a real stream (memo hits) and with
// every address unique (memo misses).
func BenchmarkMask(b *testing.B) {
	hash := cfgFor(ModeHash, ModeHash)
	for _, bc := range []struct {
		name              string
		cfg               *Config
		docs, ips, emails int
	}{
		{"defaults", DefaultConfig(), 1024, 500, 200},
		{"defaults_unique", DefaultConfig(), 16384, 1 << 24, 1 << 24},
		{"hash", hash, 1024, 500, 200},
		{"hash_unique", hash, 16384, 1 << 24, 1 << 24},
		{"redact", cfgFor(ModeRedact, ModeRedact), 1024, 500, 200},
	} {
		b.Run(bc.name, func(b *testing.B) { benchMask(b, bc.cfg, bc.docs, bc.ips, bc.emails) })
	}
}

// BenchmarkText is the scanner alone on a string without addresses, the
// common case for most values of a document.
func BenchmarkText(b *testing.B) {
	m := newMasker(DefaultConfig())
	s := "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15 2026-03-14T09:26:53.589Z"
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		m.text(s)
	}
}
