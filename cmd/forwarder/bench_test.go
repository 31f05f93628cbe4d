package main

// The benchmark harness: the real forwarder binary on six scenarios, each
// next to a comparison run made in the same invocation, printed as one
// Markdown table for the README's performance section. Run it with
// .ci/bench.sh (it starts the services); FORWARDER_BENCH_EVENTS sets the
// backlog (default 100,000: half NCP, half NHN), FORWARDER_BENCH_OUTAGE
// the broker outage of scenario 6 (default 60s) and FORWARDER_BENCH_RUNS
// the runs of each other measurement, whose median is reported (default 3).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestBenchHarness runs the benchmark scenarios and prints the table.
func TestBenchHarness(t *testing.T) {
	if os.Getenv("FORWARDER_BENCH") == "" {
		t.Skip("the benchmark harness is not part of the test run: use .ci/bench.sh (it starts Kafka, Elasticsearch and rsyslog, then runs FORWARDER_BENCH=1 go test -run TestBenchHarness)")
	}
	e := newTestEnv(t)
	e.discardStdout = true
	b := &bench{e: e, id: e.runID, n: benchEnvInt(t, "FORWARDER_BENCH_EVENTS", 100000), outage: 60 * time.Second, runs: 3}
	if v := os.Getenv("FORWARDER_BENCH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("FORWARDER_BENCH_RUNS=%q: want a positive number", v)
		}
		b.runs = n
	}
	if v := os.Getenv("FORWARDER_BENCH_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FORWARDER_BENCH_OUTAGE: %v", err)
		}
		b.outage = d
	}
	b.relpAddr = envOr("FORWARDER_TEST_SYSLOG_RELP", "127.0.0.1:15517")
	b.relpFile = envOr("FORWARDER_TEST_SYSLOG_RELP_FILE", "/tmp/forwarder-services/rsyslog/out/relp.log")
	b.tcpAddr = envOr("FORWARDER_TEST_SYSLOG_TCP", "127.0.0.1:15515")
	b.tcpFile = envOr("FORWARDER_TEST_SYSLOG_TCP_FILE", "/tmp/forwarder-services/rsyslog/out/tcp.log")
	requireTCP(t, "rsyslog (RELP)", b.relpAddr, "rsyslog")
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is not installed: `bash .ci/services/kafka.sh start` installs it")
	}
	load := [2]string{loadAvg()}
	start := time.Now()

	// The private broker of scenario 6 starts while the others run.
	privPort := freePortBlock(3)
	privEnv := []string{"FORWARDER_KAFKA_INSTANCE=kafka-bench-" + b.id, "FORWARDER_KAFKA_PORT_BASE=" + strconv.Itoa(privPort)}
	privDone := make(chan struct{})
	var privErr error
	go func() { defer close(privDone); _, privErr = serviceScript("kafka", privEnv, "start") }()
	t.Cleanup(func() { <-privDone; _, _ = serviceScript("kafka", privEnv, "stop") })

	b.record(t)
	ref := b.reference(t)
	rows := []benchRow{
		b.transformsOnly(t),
		{name: "2. simulators (both) → ecs → mask → file (backfill)", main: b.simulatorsToFile(t), cmp: ref},
		b.kafka(t),
		b.elasticsearch(t),
		b.relp(t),
	}
	<-privDone
	if privErr != nil {
		t.Fatalf("private broker for scenario 6: %v", privErr)
	}
	rows = append(rows, b.backpressure(t, []string{fmt.Sprintf("127.0.0.1:%d", privPort)}, privEnv))
	load[1] = loadAvg()

	var out strings.Builder
	fmt.Fprintf(&out, "\nforwarder benchmark, %s: %s\n", time.Now().UTC().Format("2006-01-02"), machine())
	fmt.Fprintf(&out, "load average (1, 5, 15 min) before: %s, after: %s; %d events (%d NCP + %d NHN), %s in all\n\n",
		load[0], load[1], b.n, b.n/2, b.n-b.n/2, time.Since(start).Round(time.Second))
	out.WriteString("| scenario | events/s | MB/s | CPU s / M events | peak RSS | comparison (same invocation) | events/s | MB/s | CPU s / M events | peak RSS |\n")
	out.WriteString("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		fmt.Fprintf(&out, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.name,
			r.main.eps(), r.main.mbps(), r.main.cpuPerM(), r.main.peak(),
			r.cmp.label, r.cmp.eps(), r.cmp.mbps(), r.cmp.cpuPerM(), r.cmp.peak())
	}
	out.WriteString("\n")
	for _, r := range rows {
		for _, n := range r.notes {
			fmt.Fprintf(&out, "- %s\n", n)
		}
	}
	fmt.Fprintf(&out, "- scenarios 1-5: the run of median wall time out of %d (FORWARDER_BENCH_RUNS) of each measurement\n", b.runs)
	out.WriteString("- events/s and MB/s: events (ECS documents, their NDJSON bytes) over the wall time of `forwarder run --once`, start-up included; CPU: the process's rusage (user + system time); peak RSS: its VmHWM, sampled every 50 ms (ru_maxrss of a child inherits the test process's high-water mark on Linux). The simulators run in the test process, outside those figures.\n")
	out.WriteString("- the replays (1, 3, 4, 5) read the recording with `batch_size: 1000` (the file source's default is 200; 1,000 matches Elasticsearch's `bulk_max_docs`); the API sources use `page_size` 100 (NCP) and 1000 (NHN), `rate_limit: 1000`; outputs and transforms use their defaults (mask: truncate / partial)\n")
	out.WriteString("- reproduce: `.ci/bench.sh` (FORWARDER_BENCH_EVENTS, FORWARDER_BENCH_OUTAGE, FORWARDER_BENCH_RUNS to change the sizes)\n")
	fmt.Print(out.String())
}

type bench struct {
	e      *chaosEnv
	id     string
	n      int
	runs   int // of each measurement of scenarios 1-5; the median is reported
	outage time.Duration

	relpAddr, relpFile, tcpAddr, tcpFile string

	sims               *chaosSims
	ncpItems, nhnItems string
	itemBytes          int64
	refPath            string // the ECS documents of the reference run
	refBytes           int64
	refIDs             []string
}

// benchFigures are one run's measurements.
type benchFigures struct {
	label  string
	events int
	bytes  int64
	wall   time.Duration
	cpu    time.Duration
	rss    int64 // bytes; 0: not measured
	// cpuEvents, when set, is the number of events cpu was spent on
	// (default events).
	cpuEvents int
}

func (f benchFigures) eps() string {
	if f.wall <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", float64(f.events)/f.wall.Seconds())
}

func (f benchFigures) mbps() string {
	if f.wall <= 0 || f.bytes <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", float64(f.bytes)/1e6/f.wall.Seconds())
}

func (f benchFigures) cpuPerM() string {
	n := f.events
	if f.cpuEvents > 0 {
		n = f.cpuEvents
	}
	if f.cpu <= 0 || n == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", f.cpu.Seconds()*1e6/float64(n))
}

func (f benchFigures) peak() string {
	if f.rss <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f MB", float64(f.rss)/(1<<20))
}

type benchRow struct {
	name      string
	main, cmp benchFigures
	notes     []string
}

func benchEnvInt(t *testing.T, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1000 {
		t.Fatalf("%s=%q: want a number of events >= 1000", key, v)
	}
	return n
}

// runOnce runs cfg with --once and measures it.
func (b *bench) runOnce(t *testing.T, name, cfg string, events int, size int64) benchFigures {
	t.Helper()
	p := b.e.start(t, name, cfg, true, "")
	if err := p.wait(60 * time.Minute); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, lastLines(p.stderr(), 30))
	}
	cpu, rss := p.rusage()
	return benchFigures{label: name, events: events, bytes: size, wall: p.took, cpu: cpu, rss: rss}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// record reads both simulators' backlogs once into NDJSON archives of raw
// API items (the "recorded" input of the replay scenarios).
func (b *bench) record(t *testing.T) {
	b.sims = startSims(t, b.e.creds, simSpec{ncpEvents: b.n / 2, nhnEvents: b.n - b.n/2, seed: 7})
	dir := t.TempDir()
	b.ncpItems, b.nhnItems = filepath.Join(dir, "ncp.ndjson"), filepath.Join(dir, "nhn.ndjson")
	cfg := b.e.pipeline(t, dir, b.sims.sources(1000, 100, 1000), map[string]any{
		"ncp_items": map[string]any{"type": "file", "path": b.ncpItems, "inputs": []string{"ncp"}},
		"nhn_items": map[string]any{"type": "file", "path": b.nhnItems, "inputs": []string{"nhn"}},
	}, false)
	b.runOnce(t, "record", cfg, b.n, 0)
	for path, want := range map[string]int{b.ncpItems: b.n / 2, b.nhnItems: b.n - b.n/2} {
		if got := countLines(t, path); got != want {
			t.Fatalf("%s: %d items recorded, want %d", path, got, want)
		}
	}
	b.itemBytes = fileSize(t, b.ncpItems) + fileSize(t, b.nhnItems)
}

func (b *bench) replaySources() map[string]any {
	return map[string]any{
		"ncp_replay": map[string]any{"type": "file", "path": b.ncpItems, "dataset": "ncloud.activity_tracer", "batch_size": 1000},
		"nhn_replay": map[string]any{"type": "file", "path": b.nhnItems, "dataset": "nhncloud.cloudtrail", "batch_size": 1000},
	}
}

// median runs measure b.runs times (i = 0, 1, …) and returns the run of
// median wall time: the machine is shared, and the first run after a big
// write is often slow.
func (b *bench) median(t *testing.T, what string, measure func(i int) benchFigures) benchFigures {
	t.Helper()
	var runs []benchFigures
	for i := 0; i < b.runs; i++ {
		f := measure(i)
		t.Logf("%s, run %d: %d events in %s, CPU %s, peak RSS %d MB", what, i+1, f.events,
			f.wall.Round(time.Millisecond), f.cpu.Round(time.Millisecond), f.rss>>20)
		runs = append(runs, f)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].wall < runs[j].wall })
	return runs[len(runs)/2]
}

// reference replays the recording through ecs and mask into a file: the
// comparison of scenario 2, and (its first run's output) the documents
// kcat and _bulk load.
func (b *bench) reference(t *testing.T) benchFigures {
	f := b.median(t, "reference", func(i int) benchFigures {
		dir := t.TempDir()
		out := filepath.Join(dir, "out", "events.ndjson")
		cfg := b.e.pipeline(t, dir, b.replaySources(), map[string]any{"archive": chaosFileOutput(out)}, true)
		f := b.runOnce(t, fmt.Sprintf("reference-%d", i), cfg, b.n, 0)
		f.bytes = fileSize(t, out)
		if i == 0 {
			b.refPath, b.refBytes = out, f.bytes
			b.refIDs, _ = ndjsonTail(t, out, 0, nil)
			if len(b.refIDs) != b.n {
				t.Fatalf("reference run: %d documents, want %d", len(b.refIDs), b.n)
			}
		}
		return f
	})
	f.label = "the recorded items (file source) → ecs → mask → file"
	return f
}

// 1. transforms only.
func (b *bench) transformsOnly(t *testing.T) benchRow {
	discard := func() map[string]any { return map[string]any{"discard": map[string]any{"type": "console"}} }
	main := b.median(t, "transforms only", func(i int) benchFigures {
		cfg := b.e.pipeline(t, t.TempDir(), b.replaySources(), discard(), true)
		return b.runOnce(t, fmt.Sprintf("transforms-only-%d", i), cfg, b.n, b.refBytes)
	})
	cmp := b.median(t, "no transforms", func(i int) benchFigures {
		cfg := b.e.pipeline(t, t.TempDir(), b.replaySources(), discard(), false)
		return b.runOnce(t, fmt.Sprintf("no-transforms-%d", i), cfg, b.n, b.itemBytes)
	})
	cmp.label = "the same without ecs and mask"
	return benchRow{name: "1. recorded NCP + NHN items (file source) → ecs → mask → discard (console to /dev/null)", main: main, cmp: cmp,
		notes: []string{fmt.Sprintf("1: MB/s counts the ECS documents the run produces (%.1f MB; the comparison: the raw items, %.1f MB)", float64(b.refBytes)/1e6, float64(b.itemBytes)/1e6)}}
}

// 2. simulators → full pipeline → file.
func (b *bench) simulatorsToFile(t *testing.T) benchFigures {
	return b.median(t, "simulators → file", func(i int) benchFigures {
		dir := t.TempDir()
		out := filepath.Join(dir, "out", "events.ndjson")
		cfg := b.e.pipeline(t, dir, b.sims.sources(1000, 100, 1000), map[string]any{"archive": chaosFileOutput(out)}, true)
		f := b.runOnce(t, fmt.Sprintf("simulators-to-file-%d", i), cfg, b.n, 0)
		f.bytes = fileSize(t, out)
		if got := countLines(t, out); got != b.n {
			t.Fatalf("simulators → file: %d documents, want %d", got, b.n)
		}
		return f
	})
}

// 3. → real Kafka, next to kcat -P producing the same documents.
func (b *bench) kafka(t *testing.T) benchRow {
	e := b.e
	adm := kafkaAdmin(t, e.kafkaBrokers)
	main := b.median(t, "kafka", func(i int) benchFigures {
		topic := createTopic(t, e.kafkaBrokers, fmt.Sprintf("bench-fwd-%s-%d", b.id, i))
		cfg := e.pipeline(t, t.TempDir(), b.replaySources(), map[string]any{
			"kafka": map[string]any{"type": "kafka", "brokers": e.kafkaBrokers, "topic": topic},
		}, true)
		f := b.runOnce(t, fmt.Sprintf("kafka-%d", i), cfg, b.n, b.refBytes)
		if got := endOffset(t, adm, topic); got != int64(b.n) {
			t.Fatalf("kafka: %d records, want %d", got, b.n)
		}
		return f
	})

	// kcat reads key<TAB>document lines: the same keys and values.
	keyed := filepath.Join(t.TempDir(), "keyed.ndjson")
	in, err := os.Open(b.refPath)
	if err != nil {
		t.Fatal(err)
	}
	outF, err := os.Create(keyed)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(outF, 1<<20)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		w.WriteString(eventID(sc.Bytes()))
		w.WriteByte('\t')
		w.Write(sc.Bytes())
		w.WriteByte('\n')
	}
	_ = w.Flush()
	_ = outF.Close()
	_ = in.Close()
	cmp := b.median(t, "kcat", func(i int) benchFigures {
		topic := createTopic(t, e.kafkaBrokers, fmt.Sprintf("bench-kcat-%s-%d", b.id, i))
		cmd := exec.Command("kcat", "-P", "-b", strings.Join(e.kafkaBrokers, ","), "-t", topic, "-K", "\t",
			"-z", "zstd", "-X", "acks=all", "-l", keyed)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatalf("kcat: %v", err)
		}
		done := make(chan struct{})
		hwm := sampleHWM(cmd.Process.Pid, done)
		err := cmd.Wait()
		close(done)
		if err != nil {
			t.Fatalf("kcat: %v\n%s", err, stderr.String())
		}
		wall := time.Since(start)
		if got := endOffset(t, adm, topic); got != int64(b.n) {
			t.Fatalf("kcat: %d records, want %d", got, b.n)
		}
		return benchFigures{events: b.n, bytes: b.refBytes, wall: wall,
			cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), rss: hwm.Load()}
	})
	cmp.label = "`kcat -P -z zstd -X acks=all` of the same keys and documents"
	return benchRow{name: "3. recorded items → ecs → mask → Kafka (zstd, acks=all)", main: main, cmp: cmp}
}

// 4. → real Elasticsearch, next to a plain _bulk load of the same documents.
func (b *bench) elasticsearch(t *testing.T) benchRow {
	e := b.e
	var template map[string]any
	main := b.median(t, "elasticsearch", func(i int) benchFigures {
		index := fmt.Sprintf("logs-fwdbench-%s%d", b.id, i)
		cfg := e.pipeline(t, t.TempDir(), b.replaySources(), map[string]any{
			"es": map[string]any{"type": "elasticsearch", "addresses": []string{e.esURL}, "index": index},
		}, true)
		f := b.runOnce(t, fmt.Sprintf("elasticsearch-%d", i), cfg, b.n, b.refBytes)
		if count, _, err := esCheck(e.esURL, index, nil); err != nil || count != b.n {
			t.Fatalf("elasticsearch: %d documents (%v), want %d", count, err, b.n)
		}
		if template == nil {
			var tmpl struct {
				IndexTemplates []struct {
					IndexTemplate map[string]any `json:"index_template"`
				} `json:"index_templates"`
			}
			if err := esRequest("GET", e.esURL+"/_index_template/"+index, nil, &tmpl); err != nil || len(tmpl.IndexTemplates) != 1 {
				t.Fatalf("reading the forwarder's template %s: %v", index, err)
			}
			template = tmpl.IndexTemplates[0].IndexTemplate
		}
		return f
	})

	// The plain load writes to data streams with the very same template.
	docs, err := os.ReadFile(b.refPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(docs), []byte("\n"))
	cmp := b.median(t, "plain _bulk", func(i int) benchFigures {
		plain := fmt.Sprintf("logs-fwdbenchplain-%s%d", b.id, i)
		template["index_patterns"] = []string{plain}
		if err := esRequest("PUT", e.esURL+"/_index_template/"+plain, template, nil); err != nil {
			t.Fatal(err)
		}
		var bodies [][]byte
		for i := 0; i < len(lines); i += 1000 {
			var buf bytes.Buffer
			for _, l := range lines[i:min(i+1000, len(lines))] {
				fmt.Fprintf(&buf, `{"create":{"_index":%q,"_id":%q}}`+"\n", plain, eventID(l))
				buf.Write(l)
				buf.WriteByte('\n')
			}
			bodies = append(bodies, buf.Bytes())
		}
		var ru0, ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		start := time.Now()
		work := make(chan []byte)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var loadErr error
		client := &http.Client{Timeout: 2 * time.Minute}
		for w := 0; w < 2; w++ { // the output's default max_in_flight
			wg.Add(1)
			go func() {
				defer wg.Done()
				for body := range work {
					resp, err := client.Post(e.esURL+"/_bulk", "application/x-ndjson", bytes.NewReader(body))
					if err == nil {
						var r struct {
							Errors bool `json:"errors"`
						}
						err = json.NewDecoder(resp.Body).Decode(&r)
						_ = resp.Body.Close()
						if err == nil && (r.Errors || resp.StatusCode != http.StatusOK) {
							err = fmt.Errorf("bulk: HTTP %d, errors %v", resp.StatusCode, r.Errors)
						}
					}
					if err != nil {
						mu.Lock()
						loadErr = err
						mu.Unlock()
					}
				}
			}()
		}
		for _, body := range bodies {
			work <- body
		}
		close(work)
		wg.Wait()
		wall := time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		if loadErr != nil {
			t.Fatalf("plain _bulk load: %v", loadErr)
		}
		if count, _, err := esCheck(e.esURL, plain, nil); err != nil || count != b.n {
			t.Fatalf("plain _bulk load: %d documents (%v), want %d", count, err, b.n)
		}
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		return benchFigures{events: b.n, bytes: b.refBytes, wall: wall, cpu: cpu}
	})
	cmp.label = "plain `_bulk` (1,000 documents a request, 2 in flight) of the same documents, same template"
	return benchRow{name: "4. recorded items → ecs → mask → Elasticsearch (data stream, op create, _id = event.id)", main: main, cmp: cmp,
		notes: []string{"4: the plain load's CPU is the Go test process sending prepared request bodies (no RSS: it is not a separate process)"}}
}

// 5. → rsyslog over RELP, next to plain TCP (no acknowledgements).
func (b *bench) relp(t *testing.T) benchRow {
	run := func(name, scheme, addr, file string) benchFigures {
		return b.median(t, name, func(i int) benchFigures {
			host := fmt.Sprintf("bench-%s-%s-%d", name, b.id, i)
			from := int64(0)
			if fi, err := os.Stat(file); err == nil {
				from = fi.Size()
			}
			cfg := b.e.pipeline(t, t.TempDir(), b.replaySources(), map[string]any{
				"siem": map[string]any{"type": "syslog", "address": scheme + "://" + addr, "hostname": host},
			}, true)
			f := b.runOnce(t, fmt.Sprintf("%s-%d", name, i), cfg, b.n, b.refBytes)
			// rsyslog writes what it acknowledged (RELP) or read (TCP):
			// wait until the receiver has written every message.
			got := 0
			deadline := time.Now().Add(2 * time.Minute)
			for off := from; got < b.n && time.Now().Before(deadline); {
				ids, next := relpTail(t, file, host, off)
				got += len(ids)
				off = next
				if got < b.n {
					time.Sleep(500 * time.Millisecond)
				}
			}
			if got < b.n {
				t.Errorf("%s: rsyslog wrote %d of %d messages", name, got, b.n)
			}
			return f
		})
	}
	main := run("relp", "relp", b.relpAddr, b.relpFile)
	cmp := run("tcp", "tcp", b.tcpAddr, b.tcpFile)
	cmp.label = "the same over `tcp://` (octet-counting; written and flushed, no acknowledgements)"
	return benchRow{name: "5. recorded items → ecs → mask → rsyslog over RELP (window 128)", main: main, cmp: cmp}
}

// 6. backpressure: Kafka stopped while the sources keep producing.
func (b *bench) backpressure(t *testing.T, brokers, privEnv []string) benchRow {
	e := b.e
	adm := kafkaAdmin(t, brokers)
	run := func(name string, outage time.Duration) (benchFigures, string) {
		s := startSims(t, e.creds, simSpec{ncpEvents: b.n / 2, nhnEvents: b.n - b.n/2, seed: 61, live: 100})
		topic := createTopic(t, brokers, "bench-"+name+"-"+b.id)
		dir := t.TempDir()
		cfg := e.pipeline(t, dir, s.sources(1000, 100, 1000), map[string]any{
			"kafka": map[string]any{"type": "kafka", "brokers": brokers, "topic": topic,
				"delivery": map[string]any{"timeout": "10s", "max_backoff": "5s"}},
		}, true)
		api := chaosFreeAddr(t)
		p := e.start(t, name, cfg, false, api)
		waitReadyz(t, p, http.StatusOK, `"ready":true`, 2*time.Minute)
		// The outage starts as soon as the first records are in: nearly
		// the whole backlog is still to come.
		for endOffset(t, adm, topic) == 0 && !p.exited() {
			time.Sleep(100 * time.Millisecond)
		}
		note := ""
		var restarted time.Time
		var rssOutage int64
		var atStop int64
		if outage > 0 {
			atStop = endOffset(t, adm, topic)
			if _, err := serviceScript("kafka", privEnv, "stop-broker"); err != nil {
				t.Fatal(err)
			}
			stopped := time.Now()
			for time.Since(stopped) < outage {
				rssOutage = max(rssOutage, procRSS(p.cmd.Process.Pid))
				time.Sleep(time.Second)
			}
			if _, err := serviceScript("kafka", privEnv, "start-broker"); err != nil {
				t.Fatal(err)
			}
			restarted = time.Now()
		}
		want := s.ids()
		kr := newKafkaReader(t, brokers, topic)
		got := idSet{}
		deadline := time.Now().Add(20 * time.Minute)
		for {
			kr.poll(time.Second)
			got = idSet{}
			got.addAll(kr.keys)
			if miss, _ := got.missing(want); miss == 0 {
				break
			}
			if time.Now().After(deadline) || p.exited() {
				miss, _ := got.missing(want)
				t.Fatalf("%s: %d of %d events never reached Kafka\n%s", name, miss, len(want), lastLines(p.stderr(), 20))
			}
		}
		done := time.Now()
		records := endOffset(t, adm, topic)
		if err := p.term(time.Minute); err != nil {
			t.Errorf("%s: SIGTERM: %v", name, err)
		}
		cpu, rss := p.rusage()
		f := benchFigures{events: int(records), bytes: int64(float64(records) * float64(b.refBytes) / float64(b.n)), cpu: cpu, rss: rss}
		if outage > 0 {
			f.wall = done.Sub(restarted)
			f.events, f.cpuEvents = int(records-atStop), int(records)
			f.bytes = int64(float64(records-atStop) * float64(b.refBytes) / float64(b.n))
			note = fmt.Sprintf("6: Kafka stopped for %s as soon as the first records were in, while the simulators kept adding 150 events/s; all %d events they held when the broker was back were in Kafka %.1f s after it answered again (drain time); RSS during the outage peaked at %.0f MB; events/s and MB/s: the %d records produced after the restart over the drain time, CPU over all %d records",
				outage.Round(time.Second), len(want), f.wall.Seconds(), float64(rssOutage)/(1<<20), records-atStop, records)
		} else {
			f.wall = done.Sub(p.started)
			f.label = "the same without the outage"
			note = fmt.Sprintf("6, comparison: %d events delivered in %.1f s from the start", len(want), f.wall.Seconds())
		}
		return f, note
	}
	main, note := run("outage", b.outage)
	cmp, cnote := run("no-outage", 0)
	return benchRow{name: fmt.Sprintf("6. backpressure: simulators (backlog + live) → ecs → mask → Kafka stopped for %s", b.outage.Round(time.Second)),
		main: main, cmp: cmp, notes: []string{note, cnote}}
}

// procRSS returns the resident set of a running process (bytes).
func procRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return statusKB(data, "VmRSS:") * 1024
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machine() string {
	model := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(line[strings.Index(line, ":")+1:])
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				f := strings.Fields(line)
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				mem = fmt.Sprintf("%.0f GB RAM", float64(kb)/(1<<20))
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s, %s/%s, %s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
