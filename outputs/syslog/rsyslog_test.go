package syslog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// rsyslogEnv is where .ci/services/rsyslog.sh runs its rsyslogd; the
// defaults match the script's.
type rsyslogEnv struct {
	addr       map[string]string // udp, tcp, tls, mtls, relp → host:port
	file       map[string]string // same keys → output file
	caFile     string
	clientCert string
	clientKey  string
	serverName string
	pidFile    string
	script     string
}

const startHint = "start it with: bash .ci/services/rsyslog.sh start"

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// rsyslog returns the test rsyslog, failing the test when it is not running.
func rsyslog(t testing.TB) *rsyslogEnv {
	t.Helper()
	state := filepath.Join(getenv("FORWARDER_SERVICES_DIR", "/tmp/forwarder-services"), "rsyslog")
	env := &rsyslogEnv{addr: map[string]string{}, file: map[string]string{}}
	ports := map[string]string{"udp": "15514", "tcp": "15515", "tls": "15516", "relp": "15517", "mtls": "15518"}
	for k, port := range ports {
		up := strings.ToUpper(k)
		env.addr[k] = getenv("FORWARDER_TEST_SYSLOG_"+up, "127.0.0.1:"+port)
		env.file[k] = getenv("FORWARDER_TEST_SYSLOG_"+up+"_FILE", filepath.Join(state, "out", k+".log"))
	}
	env.caFile = getenv("FORWARDER_TEST_SYSLOG_CA_FILE", filepath.Join(state, "pki", "ca.pem"))
	env.clientCert = getenv("FORWARDER_TEST_SYSLOG_CLIENT_CERT", filepath.Join(state, "pki", "client.pem"))
	env.clientKey = getenv("FORWARDER_TEST_SYSLOG_CLIENT_KEY", filepath.Join(state, "pki", "client-key.pem"))
	env.serverName = getenv("FORWARDER_TEST_SYSLOG_SERVER_NAME", "localhost")
	env.pidFile = getenv("FORWARDER_TEST_SYSLOG_PIDFILE", filepath.Join(state, "rsyslogd.pid"))
	script, _ := filepath.Abs("../../.ci/services/rsyslog.sh")
	env.script = getenv("FORWARDER_TEST_SYSLOG_SCRIPT", script)
	for _, k := range []string{"tcp", "tls", "mtls", "relp"} {
		c, err := net.DialTimeout("tcp", env.addr[k], 2*time.Second)
		if err != nil {
			t.Fatalf("rsyslog is not reachable at %s (%s): %v; %s", env.addr[k], k, err, startHint)
		}
		_ = c.Close()
	}
	if _, err := os.Stat(env.caFile); err != nil {
		t.Fatalf("rsyslog test CA missing: %v; %s", err, startHint)
	}
	return env
}

// restart kills rsyslogd hard (a crash) and starts it again.
func (e *rsyslogEnv) kill(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(e.pidFile)
	if err != nil {
		t.Fatalf("read rsyslog pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("rsyslog pid file: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill rsyslogd %d: %v", pid, err)
	}
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// start runs the service script's idempotent start.
func (e *rsyslogEnv) start() error {
	cmd := exec.Command("bash", e.script, "start")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("restart rsyslog: %w\n%s", err, stderr.String())
	}
	return nil
}

// fileSize is where new lines will start.
func fileSize(t testing.TB, path string) int64 {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// collect reads the lines rsyslog wrote after offset whose HOSTNAME is
// host, until want distinct events arrived or no line came for idle.
func collect(t testing.TB, path string, offset int64, host string, want int, idle time.Duration) []string {
	t.Helper()
	var lines []string
	ids := map[string]bool{}
	var partial []byte
	needle := []byte(" " + host + " ")
	last := time.Now()
	for {
		f, err := os.Open(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if f != nil {
			if _, err := f.Seek(offset, 0); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReaderSize(f, 1<<20)
			for {
				chunk, err := r.ReadBytes('\n')
				offset += int64(len(chunk))
				if err != nil {
					partial = append(partial, chunk...)
					break
				}
				line := chunk[:len(chunk)-1]
				if len(partial) > 0 {
					line = append(partial, line...)
					partial = nil
				}
				// HOSTNAME is the 3rd field in RFC 5424, the 4th/5th in RFC 3164.
				if i := bytes.Index(line, needle); i >= 0 && i < 64 {
					lines = append(lines, string(line))
					ids[sdID(line)] = true
					last = time.Now()
				}
			}
			offset -= int64(len(partial))
			partial = nil
			_ = f.Close()
		}
		if len(ids) >= want || time.Since(last) > idle {
			return lines
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deliver writes events in batches the way the engine does: failed events
// are retried (after a pause) until accepted, permanent failures are fatal.
// after is called with the number of events accepted so far.
func deliver(t testing.TB, o *output, events []*plugins.Event, batchSize int, after func(done int)) (retries int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	done := 0
	for start := 0; start < len(events); start += batchSize {
		pending := events[start:min(start+batchSize, len(events))]
		for len(pending) > 0 {
			err := o.Write(t.Context(), pending)
			if err == nil {
				break
			}
			var be *plugins.BatchError
			if !errors.As(err, &be) {
				if plugins.IsPermanent(err) {
					t.Fatalf("permanent error: %v", err)
				}
			} else {
				var retry []*plugins.Event
				for _, f := range be.Failures {
					if plugins.IsPermanent(f.Err) {
						t.Fatalf("permanent failure: %v", f.Err)
					}
					retry = append(retry, pending[f.Index])
				}
				pending = retry
			}
			retries++
			if time.Now().After(deadline) {
				t.Fatalf("events still not delivered after 90s: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		done = min(start+batchSize, len(events))
		if after != nil {
			after(done)
		}
	}
	return retries
}

// sdID extracts the id parameter of the first SD element (or the whole
// line when there is none, as in RFC 3164).
func sdID(line []byte) string {
	i := bytes.Index(line, []byte(` id="`))
	if i < 0 {
		return string(line)
	}
	rest := line[i+5:]
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			j++
		case '"':
			return string(rest[:j])
		}
	}
	return string(line)
}

type transportCase struct {
	name    string
	key     string // rsyslogEnv key
	scheme  string
	framing string
	mtls    bool
}

var transportCases = []transportCase{
	{name: "udp", key: "udp", scheme: "udp", framing: "octet-counting"},
	{name: "tcp-octet-counting", key: "tcp", scheme: "tcp", framing: "octet-counting"},
	{name: "tcp-newline", key: "tcp", scheme: "tcp", framing: "newline"},
	{name: "tls", key: "tls", scheme: "tls", framing: "octet-counting"},
	{name: "tls-client-cert", key: "mtls", scheme: "tls", framing: "newline", mtls: true},
	{name: "relp", key: "relp", scheme: "relp"},
}

func (tc transportCase) config(env *rsyslogEnv, c *Config) {
	c.Address = tc.scheme + "://" + env.addr[tc.key]
	if tc.framing != "" {
		c.Framing = tc.framing
	}
	if tc.scheme == "tls" {
		c.TLS.CAFile = env.caFile
		c.TLS.ServerName = env.serverName
		if tc.mtls {
			c.TLS.CertFile, c.TLS.KeyFile = env.clientCert, env.clientKey
		}
	}
}

var runSeq atomic.Int64

func runHost(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, runSeq.Add(1))
}

// TestRsyslogMatrix sends 10,000 events per transport and payload through
// a real rsyslog and checks every one arrived intact.
func TestRsyslogMatrix(t *testing.T) {
	env := rsyslog(t)
	const n = 10000
	for _, tc := range transportCases {
		for _, payload := range []string{"json", "cef", "leef"} {
			t.Run(tc.name+"/"+payload, func(t *testing.T) {
				t.Parallel()
				host := runHost(tc.name + "-" + payload)
				o := newTestOutput(t, func(c *Config) {
					tc.config(env, c)
					c.Payload = payload
					c.Hostname = host
				})
				events := make([]*plugins.Event, n)
				want := make(map[string]*plugins.Event, n)
				for i := range events {
					events[i] = testEvent(host, i, 1024)
					want[events[i].Meta.ID] = events[i]
				}
				offset := fileSize(t, env.file[tc.key])
				if err := o.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				batch := 500
				if tc.scheme == "udp" {
					batch = 100 // UDP has no flow control: give rsyslog a moment between bursts
				}
				deliver(t, o, events, batch, func(int) {
					if tc.scheme == "udp" {
						time.Sleep(2 * time.Millisecond)
					}
				})
				sent := time.Since(start)
				lines := collect(t, env.file[tc.key], offset, host, n, 3*time.Second)
				received := time.Since(start)
				seen := verifyReceived(t, o, payload, lines, want)
				t.Logf("%d events written in %v (%.0f/s), %d received after %v, verified after %v", n, sent.Round(time.Millisecond),
					float64(n)/sent.Seconds(), len(lines), received.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
				if len(seen) != n || len(lines) != n {
					t.Errorf("received %d lines, %d distinct events; want %d of each", len(lines), len(seen), n)
				}
				if got := counterValue(t, o.m.sent); got != n {
					t.Errorf("messages_sent metric = %v, want %d", got, n)
				}
			})
		}
	}
}

// TestRsyslogRFC3164 sends legacy-format messages over TCP.
func TestRsyslogRFC3164(t *testing.T) {
	env := rsyslog(t)
	const n = 2000
	host := runHost("rfc3164")
	o := newTestOutput(t, func(c *Config) {
		transportCases[1].config(env, c)
		c.Format = "rfc3164"
		c.Hostname = host
	})
	events := make([]*plugins.Event, n)
	for i := range events {
		events[i] = testEvent(host, i, 512)
	}
	offset := fileSize(t, env.file["tcp"])
	deliver(t, o, events, 500, nil)
	lines := collect(t, env.file["tcp"], offset, host, n, 3*time.Second)
	ids := map[string]bool{}
	for _, l := range lines {
		m := parse3164(t, l)
		if *m.Hostname != host || *m.Appname != "forwarder" {
			t.Fatalf("parsed %q: host %q app %q", l, *m.Hostname, *m.Appname)
		}
		doc, err := plugins.ParseObject([]byte(*m.Message))
		if err != nil {
			t.Fatalf("payload: %v", err)
		}
		id, _ := doc.GetString("event.id")
		ids[id] = true
	}
	if len(ids) != n {
		t.Errorf("received %d distinct events, want %d", len(ids), n)
	}
}

// verifyReceived checks each line is exactly the message the output
// encodes for its event, and parses it back: RFC 5424 header and SD, then
// the payload (JSON ids; CEF/LEEF extension fields).
func verifyReceived(t testing.TB, o *output, payload string, lines []string, want map[string]*plugins.Event) map[string]int {
	t.Helper()
	seen := map[string]int{}
	bad := 0
	for _, line := range lines {
		p := parse5424(t, line)
		id := p.sd[o.cfg.SDID]["id"]
		ev, ok := want[id]
		if !ok {
			t.Fatalf("unexpected event id %q in %q", id, line)
		}
		seen[id]++
		// Byte-exact comparison on a sample (the parse below covers every line).
		if seen[id] == 1 && len(seen)%16 == 1 && line != encodeOne(o, ev) && bad < 3 {
			exp := encodeOne(o, ev)
			bad++
			t.Errorf("event %s arrived altered:\n got %q\nwant %q", id, line, exp)
		}
		userName, _ := ev.Fields.GetString("user.name")
		switch payload {
		case "json":
			doc, err := plugins.ParseObject([]byte(p.msg))
			if err != nil {
				t.Fatalf("JSON payload: %v", err)
			}
			if got, _ := doc.GetString("event.id"); got != id {
				t.Fatalf("JSON event.id = %q, SD id %q", got, id)
			}
			if got, _ := doc.GetString("user.name"); got != userName {
				t.Fatalf("JSON user.name = %q, want %q", got, userName)
			}
		case "cef":
			_, ext := parseCEF(t, p.msg)
			acct, _ := ev.Fields.GetString("cloud.account.id")
			if ext["externalId"] != id || ext["suser"] != userName || ext["cs5"] != acct {
				t.Fatalf("CEF fields of %s: %v", id, ext)
			}
		case "leef":
			_, attrs := parseLEEF(t, p.msg)
			if attrs["externalId"] != id || attrs["usrName"] != userName {
				t.Fatalf("LEEF fields of %s: %v", id, attrs)
			}
		}
	}
	return seen
}

// TestRELPNothingLostWhenRsyslogCrashes kills rsyslog mid-run and
// restarts it: every event must arrive (duplicates are allowed).
func TestRELPNothingLostWhenRsyslogCrashes(t *testing.T) {
	lost, dups := crashRun(t, transportCases[5])
	if lost != 0 {
		t.Errorf("RELP lost %d events when rsyslog was killed and restarted", lost)
	}
	t.Logf("RELP: 0 lost, %d duplicates", dups)
}

// TestTCPLossWhenRsyslogCrashes measures what plain TCP syslog loses in
// the same scenario (the README quotes it). It fails only if the output
// did not recover at all.
func TestTCPLossWhenRsyslogCrashes(t *testing.T) {
	lost, dups := crashRun(t, transportCases[1])
	t.Logf("TCP (octet-counting): %d of 10000 events lost, %d duplicates, when rsyslog was killed and restarted mid-run", lost, dups)
}

func crashRun(t *testing.T, tc transportCase) (lost, dups int) {
	env := rsyslog(t)
	t.Cleanup(func() { // never leave rsyslog down
		if err := env.start(); err != nil {
			t.Error(err)
		}
	})
	const n = 10000
	host := runHost("crash-" + tc.name)
	o := newTestOutput(t, func(c *Config) {
		tc.config(env, c)
		c.Hostname = host
		c.Reconnect.InitialBackoff = 50 * time.Millisecond
		c.Reconnect.MaxBackoff = 200 * time.Millisecond
		c.WriteTimeout = 5 * time.Second
	})
	events := make([]*plugins.Event, n)
	want := make(map[string]*plugins.Event, n)
	for i := range events {
		events[i] = testEvent(host, i, 1024)
		want[events[i].Meta.ID] = events[i]
	}
	offset := fileSize(t, env.file[tc.key])
	restarted := make(chan error, 1)
	killed := false
	retries := deliver(t, o, events, 1000, func(done int) {
		if done >= 3000 && !killed {
			killed = true
			env.kill(t)
			go func() {
				time.Sleep(300 * time.Millisecond)
				restarted <- env.start()
			}()
		}
	})
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	lines := collect(t, env.file[tc.key], offset, host, n, 3*time.Second)
	seen := verifyReceived(t, o, "json", lines, want)
	for _, c := range seen {
		dups += c - 1
	}
	lost = n - len(seen)
	t.Logf("%s: %d retried writes, %d reconnects", tc.name, retries, int(counterValue(t, o.m.reconnects)))
	if counterValue(t, o.m.reconnects) < 1 {
		t.Errorf("no reconnect counted")
	}
	if len(seen) < n/2 {
		t.Fatalf("only %d of %d events arrived: the output did not recover", len(seen), n)
	}
	return lost, dups
}

// TestTLSRefusals: a wrong server name fails the handshake; a missing
// client certificate on a receiver that requires one is reported as an
// error (never as delivered events).
func TestTLSRefusals(t *testing.T) {
	env := rsyslog(t)
	host := runHost("tls-refusal")
	wrongName := newTestOutput(t, func(c *Config) {
		transportCases[3].config(env, c)
		c.TLS.ServerName = "wrong.example"
		c.Hostname = host
	})
	if err := wrongName.Write(t.Context(), events(host, 1)); err == nil || !strings.Contains(err.Error(), "not wrong.example") {
		t.Errorf("wrong server name: %v", err)
	}
	noCA := newTestOutput(t, func(c *Config) { transportCases[3].config(env, c); c.TLS.CAFile = ""; c.Hostname = host })
	if err := noCA.Write(t.Context(), events(host, 1)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unknown CA: %v", err)
	}
	noCert := newTestOutput(t, func(c *Config) {
		transportCases[4].config(env, c)
		c.TLS.CertFile, c.TLS.KeyFile = "", ""
		c.Hostname = host
	})
	err := noCert.Write(t.Context(), events(host, 1))
	if err == nil || !strings.Contains(err.Error(), "client certificate") {
		t.Errorf("missing client certificate: %v", err)
	}
}
