package kafka

// Integration tests against a real Apache Kafka broker (KRaft), started by
// .ci/services/kafka.sh. They fail, not skip, when the broker is missing.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/auditforwarder/forwarder/cmd/forwarder/forwardertest"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/kafkaconfig/kafkatest"
)

const startHint = "start it with: bash .ci/services/kafka.sh start"

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// realBrokers returns the PLAINTEXT listener of the test broker, failing the
// test when it does not answer.
func realBrokers(t testing.TB) []string { return kafkatest.Brokers(t) }

func adminFor(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// createTopic creates a fresh topic for one test and deletes it afterwards.
func createTopic(t testing.TB, brokers []string, partitions int32, configs map[string]*string) string {
	t.Helper()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "it-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + hex.EncodeToString(rnd[:])
	adm := adminFor(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, configs, name); err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, name)
	})
	waitTopic(t, brokers, name, int(partitions))
	return name
}

// waitTopic waits until the broker's metadata lists every partition of
// topic with a leader (KRaft answers CreateTopics before that).
func waitTopic(t testing.TB, brokers []string, topic string, partitions int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A fresh client each time: franz-go caches metadata answers.
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
		cancel()
		cl.Close()
		if err == nil && td[topic].Err == nil && len(td[topic].Partitions) == partitions {
			ok := true
			for _, p := range td[topic].Partitions {
				ok = ok && p.Leader >= 0 && p.Err == nil
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not ready after 30s: %+v %v", topic, td[topic], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- the forwarder binary ----

func TestMain(m *testing.M) { forwardertest.Main(m) }

func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

func forwarderBinary(t testing.TB) string { return forwardertest.Binary(t) }

// pipeline writes a pipeline.yaml that sends the generate source to Kafka.
func pipeline(t testing.TB, apiAddr string, generate, output string) string {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`data_dir: %s
shutdown_timeout: 30s
api:
  address: %q
log:
  level: info
  format: json
sources:
  synthetic:
    type: generate
%s
outputs:
  kafka:
    type: kafka
    inputs: [synthetic]
%s
`, filepath.Join(dir, "data"), apiAddr, indent(generate, "    "), indent(output, "    "))
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = prefix + strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}

// runForwarder runs `forwarder run --once` and returns its stderr.
func runForwarder(t testing.TB, ctx context.Context, path string) (string, error) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, forwarderBinary(t), "run", "--once", "-c", path)
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	err := cmd.Run()
	return stderr.String(), err
}

// ---- verification ----

func expectedIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "gen-" + strconv.Itoa(i)
	}
	sort.Strings(out)
	return out
}

// compareIDs compares sorted ids one by one with the expected ones; with
// allowDuplicates, repeated ids (at-least-once retries) are tolerated.
func compareIDs(t *testing.T, client string, got, want []string, allowDuplicates bool) (duplicates int) {
	t.Helper()
	sort.Strings(got)
	i, j := 0, 0
	var missing, unexpected []string
	for i < len(got) || j < len(want) {
		switch {
		case j == len(want) || i < len(got) && got[i] < want[j]:
			if j > 0 && i < len(got) && got[i] == want[j-1] {
				duplicates++
			} else {
				unexpected = append(unexpected, got[i])
			}
			i++
		case i == len(got) || got[i] > want[j]:
			missing = append(missing, want[j])
			j++
		default:
			i++
			j++
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: %d ids missing, e.g. %q", client, len(missing), missing[:min(5, len(missing))])
	}
	if len(unexpected) > 0 {
		t.Errorf("%s: %d unexpected ids, e.g. %q", client, len(unexpected), unexpected[:min(5, len(unexpected))])
	}
	if duplicates > 0 && !allowDuplicates {
		t.Errorf("%s: %d duplicate records", client, duplicates)
	}
	return duplicates
}

// checkRecords verifies the record layout and returns the ids: for every
// record, the key is the document's event.id, the headers name the dataset
// and source, and the timestamp is @timestamp; every 100th value is parsed
// whole (parsing all of them under -race takes half a minute).
func checkRecords(t *testing.T, recs []*kgo.Record) []string {
	t.Helper()
	ids := make([]string, 0, len(recs))
	bad := 0
	for i, r := range recs {
		ids = append(ids, string(r.Key))
		ts := r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z")
		ok := header(r, "dataset") == "generate" && header(r, "source") == "synthetic" &&
			bytes.HasPrefix(r.Value, []byte(`{"@timestamp":"`+ts+`"`)) &&
			bytes.Contains(r.Value, []byte(`"id":"`+string(r.Key)+`"`))
		if i%100 == 0 {
			doc, err := plugins.ParseObject(r.Value)
			if err != nil {
				t.Fatalf("record %s: value is not a JSON object: %v", r.Key, err)
			}
			id, _ := doc.GetString("event.id")
			dts, _ := doc.GetString("@timestamp")
			ok = ok && id == string(r.Key) && dts == ts
		}
		if !ok {
			if bad++; bad <= 3 {
				t.Errorf("record %s: headers %v, timestamp %s, value %.120s", r.Key, r.Headers, ts, r.Value)
			}
		}
	}
	return ids
}

// kcatIDs consumes the topic with kcat, an independent client (librdkafka),
// and returns the keys after checking the headers.
func kcatIDs(t *testing.T, brokers []string, topic string) []string {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatalf("kcat is not installed (apt-get install kcat); %s", startHint)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", "-C", "-b", strings.Join(brokers, ","), "-t", topic,
		"-o", "beginning", "-e", "-q", "-f", "%k\t%h\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, hdrs, _ := strings.Cut(sc.Text(), "\t")
		if hdrs != "dataset=generate,source=synthetic" {
			t.Fatalf("kcat: record %s has headers %q", key, hdrs)
		}
		ids = append(ids, key)
	}
	return ids
}

// ---- tests ----

func TestIntegration100kEventsThroughTheForwarder(t *testing.T) {
	brokers := realBrokers(t)
	topic := createTopic(t, brokers, 3, nil)
	const n = 100000
	path := pipeline(t, "",
		fmt.Sprintf("count: %d\nbatch_size: 500\nsize: 1024\ndataset: generate", n),
		fmt.Sprintf("brokers: [%s]\ntopic: %s\ncompression: zstd", strings.Join(brokers, ", "), topic))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	forwarderBinary(t) // build outside the timing
	start := time.Now()
	stderr, err := runForwarder(t, ctx, path)
	if err != nil {
		t.Fatalf("forwarder run --once: %v\n%s", err, tail(stderr, 30))
	}
	t.Logf("forwarder delivered %d events in %s", n, time.Since(start).Round(time.Millisecond))

	want := expectedIDs(n)
	start = time.Now()
	recs := consume(t, brokers, topic, n, time.Minute)
	consumed := time.Since(start)
	compareIDs(t, "franz-go consumer", checkRecords(t, recs), want, false)
	t.Logf("franz-go consumer: %d records read in %s, checked in %s", len(recs), consumed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	kids := kcatIDs(t, brokers, topic)
	compareIDs(t, "kcat", kids, want, false)
	t.Logf("kcat: %d records checked in %s", len(kids), time.Since(start).Round(time.Millisecond))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func saslSettings() (brokers []string, user, pass string) {
	return strings.Split(envOr("FORWARDER_TEST_KAFKA_SASL_BROKERS", "127.0.0.1:19093"), ","),
		envOr("FORWARDER_TEST_KAFKA_SASL_USERNAME", "forwarder"),
		envOr("FORWARDER_TEST_KAFKA_SASL_PASSWORD", "forwarder-test-secret")
}

func TestIntegrationSCRAM(t *testing.T) {
	brokers := realBrokers(t)
	saslBrokers, user, pass := saslSettings()
	topic := createTopic(t, brokers, 1, nil)
	for i, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			env := newTestEnv("kafka")
			cfg := defaultConfig()
			cfg.Brokers, cfg.Topic = saslBrokers, topic
			cfg.SASL = SASLConfig{Mechanism: mech, Username: user, Password: plugins.Secret(pass)}
			o := startOutput(t, env, cfg)
			if err := o.Write(t.Context(), makeEvents(i*10, 10, "d", "s", 300)); err != nil {
				t.Fatalf("Write over %s: %v", mech, err)
			}
			if err := env.status.get(); err != nil {
				t.Fatalf("status: %v", err)
			}
		})
	}
	// Read back over SCRAM too.
	recs := consume(t, saslBrokers, topic, 20, 20*time.Second,
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	if len(recs) != 20 {
		t.Fatalf("consumed %d records over SCRAM, want 20", len(recs))
	}

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-password-4711"
		env := newTestEnv("kafka")
		cfg := defaultConfig()
		cfg.Brokers, cfg.Topic = saslBrokers, topic
		cfg.SASL = SASLConfig{Mechanism: "SCRAM-SHA-256", Username: user, Password: wrong}
		o := createOutput(t, env, cfg)
		err := o.Start(t.Context())
		want := fmt.Sprintf("kafka brokers %s rejected the SASL SCRAM-SHA-256 credentials of user %q: SASL_AUTHENTICATION_FAILED", strings.Join(saslBrokers, ","), user)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Start with a wrong password: %v\nwant it to contain %q", err, want)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(env.logs.String(), wrong) {
			t.Fatal("the password leaked")
		}

		// The same through the binary: exit 1 with the reason, no password.
		path := pipeline(t, "", "count: 10",
			fmt.Sprintf("brokers: [%s]\ntopic: %s\nsasl: {mechanism: SCRAM-SHA-256, username: %s, password: %s}",
				strings.Join(saslBrokers, ", "), topic, user, wrong))
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		stderr, err := runForwarder(t, ctx, path)
		if err == nil {
			t.Fatalf("forwarder succeeded with a wrong password:\n%s", stderr)
		}
		if !strings.Contains(stderr, "rejected the SASL SCRAM-SHA-256 credentials") || strings.Contains(stderr, wrong) {
			t.Fatalf("forwarder stderr:\n%s", stderr)
		}
	})
}

func TestIntegrationMissingTopicAndCreateTopic(t *testing.T) {
	brokers := realBrokers(t)
	env := newTestEnv("kafka")
	cfg := defaultConfig()
	cfg.Brokers, cfg.Topic = brokers, "it-missing-topic-never-created"
	o := createOutput(t, env, cfg)
	if err := o.Start(t.Context()); err == nil || !strings.Contains(err.Error(), `topic "it-missing-topic-never-created" does not exist`) {
		t.Fatalf("Start: %v", err)
	}

	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "it-created-" + hex.EncodeToString(rnd[:])
	adm := adminFor(t, brokers)
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), name) })
	cfg2 := defaultConfig()
	cfg2.Brokers, cfg2.Topic, cfg2.CreateTopic, cfg2.Partitions, cfg2.ReplicationFactor = brokers, name, true, 2, 1
	o2 := startOutput(t, newTestEnv("kafka2"), cfg2)
	if err := o2.Write(t.Context(), makeEvents(0, 10, "d", "s", 300)); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(t.Context(), name)
	if err != nil || len(td[name].Partitions) != 2 {
		t.Fatalf("created topic: %+v %v", td[name], err)
	}
}

func TestIntegrationRecordTooLargeIsDeadLetteredAlone(t *testing.T) {
	brokers := realBrokers(t)
	topic := createTopic(t, brokers, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("16384")})
	env := newTestEnv("kafka")
	cfg := defaultConfig()
	cfg.Brokers, cfg.Topic = brokers, topic
	cfg.Linger = 50 * time.Millisecond // many 1 KB records per batch
	o := startOutput(t, env, cfg)
	events := makeEvents(0, 300, "d", "s", 1024)
	events[123] = makeEvent(123, "d", "s", 40000)
	err := o.Write(t.Context(), events)
	var be *plugins.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 1 || be.Failures[0].Index != 123 || !plugins.IsPermanent(be.Failures[0].Err) {
		t.Fatalf("want only event 123 to fail permanently, got %v", err)
	}
	if !strings.Contains(be.Failures[0].Err.Error(), "MESSAGE_TOO_LARGE") {
		t.Fatalf("failure: %v", be.Failures[0].Err)
	}
	if n := len(consume(t, brokers, topic, 299, 20*time.Second)); n != 299 {
		t.Fatalf("consumed %d, want 299", n)
	}

	// Through the forwarder: too-large events land in the dead-letter file
	// with the broker's reason, and the run still completes.
	path := pipeline(t, "", "count: 5\nbatch_size: 5\nsize: 40000",
		fmt.Sprintf("brokers: [%s]\ntopic: %s", strings.Join(brokers, ", "), topic))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if stderr, err := runForwarder(t, ctx, path); err != nil {
		t.Fatalf("forwarder: %v\n%s", err, tail(stderr, 20))
	}
	dead, err := os.ReadFile(filepath.Join(filepath.Dir(path), "data", "dead_letter", "kafka.ndjson"))
	if err != nil {
		t.Fatalf("dead-letter file: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(dead)), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d dead letters, want 5:\n%.500s", len(lines), dead)
	}
	for i, l := range lines {
		if !strings.Contains(l, "MESSAGE_TOO_LARGE") || !strings.Contains(l, fmt.Sprintf(`"event_id":"gen-%d"`, i)) {
			t.Fatalf("dead letter %d: %.300s", i, l)
		}
	}
}

// The outage test stops a broker for half a minute. Other packages test
// against the shared broker at the same time, so it starts a private one
// from the same script on ports 19192-19194.
var outageEnv = []string{"FORWARDER_KAFKA_INSTANCE=kafka-outage-test", "FORWARDER_KAFKA_PORT_BASE=19192"}

const outageBroker = "127.0.0.1:19192"

// kafkaScript runs .ci/services/kafka.sh with a command for the private broker.
func kafkaScript(t *testing.T, command string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), ".ci", "services", "kafka.sh"), command)
	cmd.Env = append(os.Environ(), outageEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kafka.sh %s (private broker %s): %v\n%s", command, outageBroker, err, stderr.String())
	}
}

func readyz(addr string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestIntegrationBrokerOutage(t *testing.T) {
	realBrokers(t) // the shared broker proves the jars and tools are installed
	t.Cleanup(func() { kafkaScript(t, "stop") })
	kafkaScript(t, "start")
	brokers := []string{outageBroker}
	topic := createTopic(t, brokers, 3, nil)

	const n = 30000
	api := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	path := pipeline(t, api,
		fmt.Sprintf("count: %d\nbatch_size: 500\nsize: 1024\ninterval: 200ms\ndataset: generate", n),
		fmt.Sprintf("brokers: [%s]\ntopic: %s\ndelivery: {timeout: 10s, max_backoff: 5s}", strings.Join(brokers, ", "), topic))

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	type result struct {
		stderr string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		s, err := runForwarder(t, ctx, path)
		done <- result{s, err}
	}()

	waitReady := func(what string, want int, contains string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			code, body := readyz(api)
			if code == want && strings.Contains(body, contains) {
				t.Logf("/readyz %s: %d %s", what, code, strings.TrimSpace(body))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never became %s: last %d %s", what, code, body)
			}
			select {
			case r := <-done:
				t.Fatalf("forwarder exited early: %v\n%s", r.err, tail(r.stderr, 30))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitReady("ready", http.StatusOK, `"ready":true`, 30*time.Second)
	time.Sleep(2 * time.Second) // some batches delivered, most still to come

	stopped := time.Now()
	kafkaScript(t, "stop-broker")
	waitReady("not ready", http.StatusServiceUnavailable, "no Kafka broker reachable", 20*time.Second)
	time.Sleep(30*time.Second - time.Since(stopped))
	t.Logf("broker stopped for %s; restarting it", time.Since(stopped).Round(time.Second))
	kafkaScript(t, "start-broker")
	t.Logf("broker answering again after %s", time.Since(stopped).Round(time.Second))

	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("the forwarder did not finish after the broker came back")
	}
	if r.err != nil {
		t.Fatalf("forwarder run --once: %v\n%s", r.err, tail(r.stderr, 30))
	}
	if !strings.Contains(r.stderr, "Kafka brokers reachable again") {
		t.Errorf("no recovery logged:\n%s", tail(r.stderr, 20))
	}
	recs := consume(t, brokers, topic, n, time.Minute)
	dups := compareIDs(t, "franz-go consumer", checkRecords(t, recs), expectedIDs(n), true)
	t.Logf("%d records for %d events (%d duplicates from retried batches, allowed: at-least-once)", len(recs), n, dups)
}
