package main

// Cluster mode against a real Kafka broker and the API simulators, with
// real forwarder processes (the binary TestMain builds).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditforwarder/forwarder/plugins/kafkaconfig/kafkatest"
	"github.com/auditforwarder/forwarder/sources/ncloud"
	"github.com/auditforwarder/forwarder/sources/nhncloud"
)

func testKafkaBrokers(t testing.TB) []string { return kafkatest.Brokers(t) }

func uniqueSuffix() string { return fmt.Sprintf("%d-%d", time.Now().UnixNano()%1e10, rand.IntN(1e6)) }

func deleteTopicsLater(t *testing.T, brokers []string, topics ...string) {
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(cl).DeleteTopics(ctx, topics...)
	})
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// instance is one forwarder process of a cluster test.
type instance struct {
	name, api, out, logPath string
	cmd                     *exec.Cmd
	exited                  chan error
}

func startInstance(t *testing.T, dir, name, cfg string, env ...string) *instance {
	t.Helper()
	in := &instance{name: name, api: freeAddr(t), out: filepath.Join(dir, name, "out.ndjson"),
		logPath: filepath.Join(dir, name+".log"), exited: make(chan error, 1)}
	logf, err := os.Create(in.logPath)
	if err != nil {
		t.Fatal(err)
	}
	in.cmd = exec.Command(forwarderBin, "run", "-c", cfg)
	in.cmd.Env = append(append(os.Environ(), "INSTANCE="+name, "API_ADDR="+in.api,
		"DATA_DIR="+filepath.Join(dir, name, "data"), "OUT_PATH="+in.out), env...)
	in.cmd.Stdout, in.cmd.Stderr = logf, logf
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { in.exited <- in.cmd.Wait(); _ = logf.Close() }()
	t.Cleanup(func() {
		if in.cmd.ProcessState == nil {
			_ = in.cmd.Process.Kill()
			<-in.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(in.logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- log tail of %s ---\n%s", name, b)
		}
	})
	return in
}

// readyz returns /readyz's body, or nil while the API does not answer.
func (in *instance) readyz() map[string]any {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + in.api + "/readyz")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body map[string]any
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	return body
}

// owned returns the sources /readyz says the instance runs.
func (in *instance) owned() []string {
	body := in.readyz()
	c, _ := body["cluster"].(map[string]any)
	list, _ := c["sources"].([]any)
	var out []string
	for _, s := range list {
		out = append(out, fmt.Sprint(s))
	}
	return out
}

func (in *instance) metric(name string) string {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + in.api + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func (in *instance) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = in.cmd.Process.Signal(sig)
	select {
	case err := <-in.exited:
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("%s exited with %v after SIGTERM", in.name, err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("%s did not exit after %v", in.name, sig)
	}
}

// readEventIDs reads NDJSON output files and counts each event.id; a torn
// last line (a write in progress, or an instance killed mid-write) is
// ignored, any other invalid line fails the test.
func readEventIDs(t testing.TB, paths ...string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i < len(b)-1 {
			b = b[:i+1] // the torn tail
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 4<<20), 4<<20)
		line := 0
		for sc.Scan() {
			line++
			var doc struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			}
			if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
				t.Fatalf("%s:%d: invalid JSON line: %v", p, line, err)
			}
			ids[doc.Event.ID]++
		}
	}
	return ids
}

// ---- the API side: simulators behind one listener per instance ----

// apiRequest is one request an account's simulator served.
type apiRequest struct {
	instance, account string
	start, end        time.Time
}

// apiFarm serves every account's simulator; each forwarder instance gets
// its own listener (its endpoint, through the environment), so every
// request is attributed to the instance that made it. NCP requests are
// routed by their access key header, NHN ones by the appKey in the path.
type apiFarm struct {
	ncp  map[string]*ncloud.Simulator   // access key → simulator
	nhn  map[string]*nhncloud.Simulator // appKey → simulator
	srvs []*http.Server

	mu   sync.Mutex
	reqs []apiRequest
}

func (f *apiFarm) handler(instance string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		account := ""
		var h http.Handler
		if key := r.Header.Get("x-ncp-iam-access-key"); key != "" {
			account, h = key, f.ncp[key]
		} else if i := strings.Index(r.URL.Path, "/appkeys/"); i >= 0 {
			key, _, _ := strings.Cut(r.URL.Path[i+len("/appkeys/"):], "/")
			if sim := f.nhn[key]; sim != nil {
				account, h = key, sim
			}
		}
		if h == nil {
			http.Error(w, "unknown account", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
		f.mu.Lock()
		f.reqs = append(f.reqs, apiRequest{instance: instance, account: account, start: start, end: time.Now()})
		f.mu.Unlock()
	})
}

func (f *apiFarm) listen(t *testing.T, instance string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f.handler(instance), ReadHeaderTimeout: 5 * time.Second}
	f.srvs = append(f.srvs, srv)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func (f *apiFarm) requests() []apiRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiRequest(nil), f.reqs...)
}

// overlaps returns the requests of one account made by two instances at
// the same time: a source polled by two owners at once.
func overlaps(reqs []apiRequest) []string {
	by := map[string][]apiRequest{}
	for _, r := range reqs {
		by[r.account] = append(by[r.account], r)
	}
	var out []string
	for acct, rs := range by {
		sort.Slice(rs, func(i, j int) bool { return rs[i].start.Before(rs[j].start) })
		for i := range rs {
			for j := i + 1; j < len(rs) && rs[j].start.Before(rs[i].end); j++ {
				if rs[j].instance != rs[i].instance {
					out = append(out, fmt.Sprintf("%s: %s [%s..%s] and %s [%s..%s]", acct,
						rs[i].instance, rs[i].start.Format("15:04:05.000"), rs[i].end.Format("15:04:05.000"),
						rs[j].instance, rs[j].start.Format("15:04:05.000"), rs[j].end.Format("15:04:05.000")))
				}
			}
		}
	}
	return out
}

// expected returns the ids every simulator holds whose event was visible
// by cutoff.
func (f *apiFarm) expected(cutoff time.Time) map[string]bool {
	want := map[string]bool{}
	for _, sim := range f.ncp {
		for _, ev := range sim.Events() {
			if !ev.VisibleAt.After(cutoff) {
				want[ev.ID] = true
			}
		}
	}
	for _, sim := range f.nhn {
		for _, ev := range sim.Events() {
			if !ev.Visible.After(cutoff) {
				want[ev.UUID] = true
			}
		}
	}
	return want
}

// newFarm makes nNCP NAVER and nNHN NHN accounts with backlog events over
// the last two hours and live events arriving at rate per second.
func newFarm(nNCP, nNHN, backlog int, rate float64) (*apiFarm, []string) {
	f := &apiFarm{ncp: map[string]*ncloud.Simulator{}, nhn: map[string]*nhncloud.Simulator{}}
	var sources []string
	for i := 0; i < nNCP; i++ {
		key := fmt.Sprintf("ncp-acct-%02d", i)
		f.ncp[key] = ncloud.NewSimulator(ncloud.SimulatorConfig{AccessKey: key, SecretKey: "secret-" + key,
			Events: backlog, Span: 2 * time.Hour, Seed: uint64(100 + i), LiveRate: rate})
		sources = append(sources, fmt.Sprintf(`  ncp%02d:
    type: ncloud_activity_tracer
    endpoint: ${SIM_ENDPOINT}
    access_key: %s
    secret_key: secret-%s
    interval: 1s
    lookback: 3h
    overlap: 1m
    rate_limit: 3
`, i, key, key))
	}
	for i := 0; i < nNHN; i++ {
		key := fmt.Sprintf("nhnappkey%02d", i)
		sim := nhncloud.NewSimulator(nhncloud.SimulatorOptions{AppKey: key, UserAccessKeyID: "uak-" + key,
			SecretAccessKey: "sak-" + key, Seed: uint64(200 + i)})
		now := time.Now()
		sim.Generate(backlog, now.Add(-2*time.Hour), now)
		if rate > 0 {
			sim.Live(rate)
		}
		f.nhn[key] = sim
		sources = append(sources, fmt.Sprintf(`  nhn%02d:
    type: nhncloud_cloudtrail
    endpoint: ${SIM_ENDPOINT}
    api_version: v2
    app_key: %s
    user_access_key_id: uak-%s
    secret_access_key: sak-%s
    interval: 1s
    lookback: 3h
    page_size: 100
    overlap: 1m
    rate_limit: 3
`, i, key, key, key))
	}
	return f, sources
}

func sourceNames(sources []string) []string {
	var out []string
	for _, s := range sources {
		out = append(out, strings.TrimSuffix(strings.TrimSpace(strings.SplitN(s, "\n", 2)[0]), ":"))
	}
	sort.Strings(out)
	return out
}

// clusterPipeline is the one pipeline.yaml every instance runs.
func clusterPipeline(brokers []string, group string, sources []string, outputs string) string {
	return fmt.Sprintf(`data_dir: ${DATA_DIR}
shutdown_timeout: 5s
api: {address: "${API_ADDR}"}
log: {level: info, format: json}
cluster:
  kafka:
    brokers: [%s]
  group: %s
  instance_id: ${INSTANCE}
  session_timeout: 6s
  heartbeat_interval: 500ms
sources:
%stransforms:
  ecs:
    type: ecs
    inputs: [%s]
%s`, strings.Join(brokers, ", "), group, strings.Join(sources, ""), strings.Join(sourceNames(sources), ", "), outputs)
}

const fileOutput = `outputs:
  archive:
    type: file
    inputs: [ecs]
    path: ${OUT_PATH}
`

// ownership returns source → owners as the instances' /readyz report it.
func ownership(ins ...*instance) map[string][]string {
	m := map[string][]string{}
	for _, in := range ins {
		for _, s := range in.owned() {
			m[s] = append(m[s], in.name)
		}
	}
	return m
}

func settled(m map[string][]string, sources []string) bool {
	if len(m) != len(sources) {
		return false
	}
	for _, owners := range m {
		if len(owners) != 1 {
			return false
		}
	}
	return true
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterThreeInstancesShareAndFailOver runs 3 forwarders over 12
// simulated accounts (8 NAVER, 4 NHN): the sources are split between them,
// each is polled by exactly one instance at any moment, and when one
// instance is killed with SIGKILL its sources resume on the others within
// 30 s from their checkpoints in Kafka, losing nothing.
func TestClusterThreeInstancesShareAndFailOver(t *testing.T) {
	brokers := testKafkaBrokers(t)
	dir := t.TempDir()
	group := "ct-" + uniqueSuffix()
	deleteTopicsLater(t, brokers, group+"-state", group+"-coordination")
	farm, sources := newFarm(8, 4, 2000, 3)
	names := sourceNames(sources)
	cfg := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, cfg, clusterPipeline(brokers, group, sources, fileOutput))

	var ins []*instance
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("fwd%d", i)
		ins = append(ins, startInstance(t, dir, name, cfg, "SIM_ENDPOINT="+farm.listen(t, name)))
	}
	eventually(t, "the 12 sources to be split between the 3 instances", 60*time.Second, func() bool {
		m := ownership(ins...)
		if !settled(m, names) {
			return false
		}
		for _, in := range ins {
			if len(in.owned()) != 4 {
				return false
			}
		}
		return true
	})
	m := ownership(ins...)
	t.Logf("ownership: %v", m)
	if gen := ins[0].metric("forwarder_cluster_generation"); gen == "" {
		t.Fatal("no forwarder_cluster_generation metric")
	}

	time.Sleep(3 * time.Second) // let them work (backfill in progress)
	victim := ins[rand.IntN(3)]
	lostSources := victim.owned()
	killedAt := time.Now()
	victim.stop(t, syscall.SIGKILL)
	t.Logf("killed %s (owned %v)", victim.name, lostSources)

	survivors := []*instance{}
	for _, in := range ins {
		if in != victim {
			survivors = append(survivors, in)
		}
	}
	eventually(t, "the victim's sources to move", 45*time.Second, func() bool { return settled(ownership(survivors...), names) })

	// Failover time: until every lost source was polled by a survivor.
	account := map[string]string{}
	for i := 0; i < 8; i++ {
		account[fmt.Sprintf("ncp%02d", i)] = fmt.Sprintf("ncp-acct-%02d", i)
	}
	for i := 0; i < 4; i++ {
		account[fmt.Sprintf("nhn%02d", i)] = fmt.Sprintf("nhnappkey%02d", i)
	}
	var failover time.Duration
	eventually(t, "every lost source to be polled again", 45*time.Second, func() bool {
		failover = 0
		for _, src := range lostSources {
			acct := account[src]
			first := time.Time{}
			for _, r := range farm.requests() {
				if r.account == acct && r.instance != victim.name && r.start.After(killedAt) && (first.IsZero() || r.start.Before(first)) {
					first = r.start
				}
			}
			if first.IsZero() {
				return false
			}
			failover = max(failover, first.Sub(killedAt))
		}
		return true
	})
	t.Logf("failover: the killed instance's %d sources were polled again %.1fs after SIGKILL", len(lostSources), failover.Seconds())
	if failover > 30*time.Second {
		t.Fatalf("failover took %s, want < 30s", failover)
	}

	// Nothing lost: every event visible 5 s after the failover is delivered.
	cutoff := time.Now().Add(-2 * time.Second)
	want := farm.expected(cutoff)
	var outs []string
	for _, in := range ins {
		outs = append(outs, in.out)
	}
	var missing []string
	eventually(t, "every event to be delivered", 60*time.Second, func() bool {
		got := readEventIDs(t, outs...)
		missing = missing[:0]
		for id := range want {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	for _, in := range survivors {
		in.stop(t, syscall.SIGTERM)
	}
	got := readEventIDs(t, outs...)
	total := 0
	for _, n := range got {
		total += n
	}
	t.Logf("%d events expected, %d delivered (%d distinct, %.2f%% duplicates from the killed instance's last batches)",
		len(want), total, len(got), 100*float64(total-len(got))/float64(max(len(got), 1)))

	if ov := overlaps(farm.requests()); len(ov) > 0 {
		t.Fatalf("%d requests overlapped with another instance's on the same account, e.g. %v", len(ov), ov[:min(3, len(ov))])
	}
	perInstance := map[string]int{}
	for _, r := range farm.requests() {
		perInstance[r.instance]++
	}
	t.Logf("API requests per instance: %v; no account was ever polled by two instances at once", perInstance)
}

// TestClusterKafkaSourceRebalanceAtLeastOnce runs the delivery tier: the
// kafka source → file output on 2 instances while records keep arriving;
// the second instance joins mid-run and the first leaves later (two
// rebalances). Every record is delivered at least once, and a sampler
// checks throughout that the group's committed offsets never pass a record
// that is not in an output file yet.
func TestClusterKafkaSourceRebalanceAtLeastOnce(t *testing.T) {
	brokers := testKafkaBrokers(t)
	dir := t.TempDir()
	sfx := uniqueSuffix()
	topic, group, cgroup := "ks-"+sfx, "ksg-"+sfx, "kc-"+sfx
	deleteTopicsLater(t, brokers, topic, cgroup+"-state", cgroup+"-coordination")
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	adm := kadm.NewClient(prod)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 6, -1, nil, topic); err != nil {
		t.Fatal(err)
	}

	// Producer: 30000 records over about 8 s.
	const total = 30000
	var pmu sync.Mutex
	idAt := map[int32]map[int64]string{} // partition → offset → id
	produced := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += 500 {
			recs := make([]*kgo.Record, 500)
			for j := range recs {
				id := fmt.Sprintf("rec-%06d", i+j)
				recs[j] = &kgo.Record{Key: []byte(id), Value: []byte(fmt.Sprintf(
					`{"@timestamp":"2026-01-02T03:04:05.000Z","event":{"id":%q,"dataset":"ncloud.activity_tracer"},"message":"record %d"}`, id, i+j))}
			}
			var res kgo.ProduceResults
			for attempt := 0; ; attempt++ {
				res = prod.ProduceSync(ctx, recs...)
				if res.FirstErr() == nil || attempt > 20 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err := res.FirstErr(); err != nil {
				produced <- err
				return
			}
			pmu.Lock()
			for _, r := range res {
				if idAt[r.Record.Partition] == nil {
					idAt[r.Record.Partition] = map[int64]string{}
				}
				idAt[r.Record.Partition][r.Record.Offset] = string(r.Record.Key)
			}
			pmu.Unlock()
			time.Sleep(130 * time.Millisecond)
		}
		produced <- nil
	}()

	cfg := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, cfg, fmt.Sprintf(`data_dir: ${DATA_DIR}
shutdown_timeout: 5s
api: {address: "${API_ADDR}"}
log: {level: info, format: json}
cluster:
  kafka: {brokers: [%[1]s]}
  group: %[2]s
  instance_id: ${INSTANCE}
  session_timeout: 6s
  heartbeat_interval: 500ms
sources:
  delivery:
    type: kafka
    brokers: [%[1]s]
    topics: [%[3]s]
    group: %[4]s
    max_batch_records: 200
    session_timeout: 6s
    heartbeat_interval: 500ms
    revoke_timeout: 5s
outputs:
  archive:
    type: file
    inputs: [delivery]
    path: ${OUT_PATH}
`, strings.Join(brokers, ", "), cgroup, topic, group))

	a := startInstance(t, dir, "a", cfg)
	b := &instance{}
	outs := []string{a.out, filepath.Join(dir, "b", "out.ndjson")}

	// The sampler: committed offsets first, then the files (which only
	// grow): every record below a committed offset must be in a file.
	var violations []string
	var samples int
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(250 * time.Millisecond):
			}
			resp, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				continue
			}
			committed := map[int32]int64{}
			resp.Each(func(o kadm.OffsetResponse) {
				if o.Topic == topic && o.Err == nil {
					committed[o.Partition] = o.At
				}
			})
			got := readEventIDs(t, outs...)
			samples++
			pmu.Lock()
			for p, upTo := range committed {
				for off, id := range idAt[p] {
					if off < upTo && got[id] == 0 && len(violations) < 10 {
						violations = append(violations, fmt.Sprintf("partition %d committed up to %d but offset %d (%s) is in no output", p, upTo, off, id))
					}
				}
			}
			pmu.Unlock()
		}
	}()

	eventually(t, "a to deliver records", 30*time.Second, func() bool { return len(readEventIDs(t, a.out)) > 2000 })
	b = startInstance(t, dir, "b", cfg)
	eventually(t, "b to take partitions over", 30*time.Second, func() bool { return len(readEventIDs(t, b.out)) > 1000 })
	a.stop(t, syscall.SIGTERM) // the second rebalance: b gets everything
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	var missing int
	eventually(t, "every record to be delivered", 60*time.Second, func() bool {
		got := readEventIDs(t, outs...)
		missing = 0
		pmu.Lock()
		defer pmu.Unlock()
		for _, offs := range idAt {
			for _, id := range offs {
				if got[id] == 0 {
					missing++
				}
			}
		}
		return missing == 0
	})
	eventually(t, "the lag to reach zero", 30*time.Second, func() bool {
		lag := b.metric("forwarder_kafka_source_lag_records")
		return strings.Count(lag, "\n")+1 == 6 && !strings.Contains(lag, "} 1") && strings.Count(lag, "} 0") == 6
	})
	close(stopSampling)
	<-sampled
	b.stop(t, syscall.SIGTERM)
	if len(violations) > 0 {
		t.Fatalf("offsets committed ahead of delivery (%d samples): %v", samples, violations)
	}
	got := readEventIDs(t, outs...)
	sum := 0
	for _, n := range got {
		sum += n
	}
	if len(got) != total {
		t.Fatalf("%d distinct records delivered, want %d", len(got), total)
	}
	t.Logf("%d records, %d deliveries (%.2f%% re-delivered across the rebalances); %d samples of committed offsets, none ahead of delivery",
		total, sum, 100*float64(sum-total)/total, samples)
}

// TestClusterThroughput measures what 1, 2 and 3 instances deliver from 12
// simulated accounts (8 NAVER, 4 NHN; a backlog each) into a Kafka topic
// through the ecs transform and the Kafka output. Long: it runs only with
// FORWARDER_CLUSTER_BENCH=1 (events per account: FORWARDER_CLUSTER_BENCH_EVENTS,
// default 20000; FORWARDER_CLUSTER_BENCH_EOS=1 turns exactly_once on).
func TestClusterThroughput(t *testing.T) {
	if os.Getenv("FORWARDER_CLUSTER_BENCH") != "1" {
		t.Skip("benchmark: set FORWARDER_CLUSTER_BENCH=1 to run it")
	}
	brokers := testKafkaBrokers(t)
	perAccount := 20000
	if v := os.Getenv("FORWARDER_CLUSTER_BENCH_EVENTS"); v != "" {
		_, _ = fmt.Sscan(v, &perAccount)
	}
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("instances=%d", n), func(t *testing.T) {
			dir := t.TempDir()
			sfx := uniqueSuffix()
			group, topic := "cb-"+sfx, "cb-out-"+sfx
			deleteTopicsLater(t, brokers, group+"-state", group+"-coordination", topic)
			farm, sources := newFarm(8, 4, perAccount, 0)
			for i := range sources {
				sources[i] = strings.ReplaceAll(sources[i], "rate_limit: 3", "rate_limit: 1000")
				sources[i] = strings.ReplaceAll(sources[i], "page_size: 100\n", "page_size: 1000\n")
			}
			want := len(farm.expected(time.Now()))
			cfg := filepath.Join(dir, "pipeline.yaml")
			writeFile(t, cfg, clusterPipeline(brokers, group, sources, fmt.Sprintf(`outputs:
  kafka:
    type: kafka
    inputs: [ecs]
    brokers: [%s]
    topic: %s
    compression: lz4
    exactly_once: %v
`, strings.Join(brokers, ", "), topic, os.Getenv("FORWARDER_CLUSTER_BENCH_EOS") == "1")))
			cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
			defer cl.Close()
			adm := kadm.NewClient(cl)
			// Created here, so this client's metadata knows it from the start.
			if _, err := adm.CreateTopic(context.Background(), 6, -1, nil, topic); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			var ins []*instance
			for i := 0; i < n; i++ {
				name := fmt.Sprintf("fwd%d", i)
				ins = append(ins, startInstance(t, dir, name, cfg, "SIM_ENDPOINT="+farm.listen(t, name)))
			}
			names := sourceNames(sources)
			settledAt := make(chan time.Time, 1)
			go func() {
				for time.Since(start) < 3*time.Minute {
					if settled(ownership(ins...), names) {
						settledAt <- time.Now()
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				settledAt <- time.Time{}
			}()
			eventually(t, "every event in the topic", 3*time.Minute, func() bool {
				ends, err := adm.ListEndOffsets(context.Background(), topic)
				if err != nil {
					return false
				}
				sum := int64(0)
				ends.Each(func(o kadm.ListedOffset) {
					if o.Err == nil {
						sum += o.Offset
					}
				})
				return sum >= int64(want)
			})
			took := time.Since(start)
			for _, in := range ins {
				in.stop(t, syscall.SIGTERM)
			}
			t.Logf("BENCH instances=%d exactly_once=%v events=%d took=%.1fs: %.0f events/s from process start (%.1fs to join and split the sources)",
				n, os.Getenv("FORWARDER_CLUSTER_BENCH_EOS") == "1", want, took.Seconds(), float64(want)/took.Seconds(), (<-settledAt).Sub(start).Seconds())
		})
	}
}

// TestClusterExactlyOnceAcrossKill9 backfills 4 simulated accounts into a
// Kafka topic through an exactly_once Kafka output on 2 instances, killing
// one of them with SIGKILL at random moments (and starting it again); a
// read_committed consumer must then see every event id exactly once.
// Short form: 4 kills; FORWARDER_CLUSTER_LONG=1: 20 kills over a bigger
// backfill.
func TestClusterExactlyOnceAcrossKill9(t *testing.T) {
	brokers := testKafkaBrokers(t)
	kills, backlog, rate := 4, 3000, "3"
	if os.Getenv("FORWARDER_CLUSTER_LONG") == "1" {
		kills, backlog, rate = 20, 12000, "4"
	}
	dir := t.TempDir()
	sfx := uniqueSuffix()
	group, topic := "ce-"+sfx, "ce-out-"+sfx
	deleteTopicsLater(t, brokers, group+"-state", group+"-coordination", topic)
	farm, sources := newFarm(4, 0, backlog, 0)
	for i := range sources {
		sources[i] = strings.ReplaceAll(sources[i], "rate_limit: 3", "rate_limit: "+rate)
	}
	want := farm.expected(time.Now())
	cfg := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, cfg, clusterPipeline(brokers, group, sources, fmt.Sprintf(`outputs:
  kafka:
    type: kafka
    inputs: [ecs]
    brokers: [%s]
    topic: %s
    create_topic: true
    partitions: 3
    exactly_once: true
`, strings.Join(brokers, ", "), topic)))

	endpoints := map[string]string{}
	start := func(name string) *instance {
		if endpoints[name] == "" {
			endpoints[name] = farm.listen(t, name)
		}
		return startInstance(t, dir, name, cfg, "SIM_ENDPOINT="+endpoints[name])
	}
	ins := map[string]*instance{"a": start("a"), "b": start("b")}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	delivered := func() int64 {
		ends, err := adm.ListCommittedOffsets(context.Background(), topic)
		if err != nil {
			return 0
		}
		sum := int64(0)
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				sum += o.Offset
			}
		})
		return sum
	}
	// Each kill waits for some progress since the last one, so the kills
	// land all along the backfill, with batches in flight.
	total := int64(len(want))
	step := total / int64(kills+1)
	for k := 0; k < kills; k++ {
		target := int64(k)*step + step/4 + rand.Int64N(step/2)
		eventually(t, "progress before the next kill", 90*time.Second, func() bool { return delivered() >= target })
		name := []string{"a", "b"}[rand.IntN(2)]
		ins[name].stop(t, syscall.SIGKILL)
		ins[name] = start(name)
	}
	// Offsets count the transaction markers too: an upper bound of the records.
	t.Logf("%d SIGKILLs done during the backfill; at most %d of %d events committed by then", kills, delivered(), len(want))

	// Read the topic with read_committed until every event is there.
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]int{}
	deadline := time.Now().Add(3 * time.Minute)
	for len(seen) < len(want) && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fetches := consumer.PollFetches(ctx)
		cancel()
		fetches.EachRecord(func(r *kgo.Record) {
			var doc struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			}
			if err := json.Unmarshal(r.Value, &doc); err != nil {
				t.Errorf("record %d/%d is not an ECS document: %v", r.Partition, r.Offset, err)
			}
			seen[doc.Event.ID]++
		})
	}
	// Let anything in flight land, then read the rest.
	time.Sleep(3 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fetches := consumer.PollFetches(ctx)
		cancel()
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			var doc struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			}
			_ = json.Unmarshal(r.Value, &doc)
			seen[doc.Event.ID]++
		})
		if n == 0 {
			break
		}
	}
	for _, in := range ins {
		in.stop(t, syscall.SIGTERM)
	}
	var missing, dups []string
	for id := range want {
		switch seen[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			dups = append(dups, fmt.Sprintf("%s×%d", id, seen[id]))
		}
	}
	for id := range seen {
		if !want[id] {
			t.Errorf("unexpected event id %q in the topic", id)
		}
	}
	if len(missing) > 0 || len(dups) > 0 {
		t.Fatalf("read_committed: %d events missing (e.g. %v), %d duplicated (e.g. %v) of %d",
			len(missing), missing[:min(3, len(missing))], len(dups), dups[:min(3, len(dups))], len(want))
	}
	t.Logf("exactly once: %d events, each seen once by a read_committed consumer after %d SIGKILLs", len(want), kills)
}
