package main

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/ncloud"
	"github.com/auditforwarder/forwarder/sources/nhncloud"
)

// demoPipeline is the shipped pipeline.yaml's sources and transforms with a
// single file output; TestDemoPipelineMatchesShipped keeps it in step.
//
//go:embed demo_pipeline.yaml
var demoPipeline []byte

func init() { extraCommands = append(extraCommands, newDemoCmd) }

// Dummy credentials the demo's simulators accept.
const (
	demoNHNAppKey    = "demo-app-key"
	demoNHNAccessKey = "demo-user-access-key-id"
	demoNHNSecret    = "demo-secret-access-key"
)

type demoOptions struct {
	follow    bool
	console   bool
	dir       string
	ncpEvents int
	nhnEvents int
	// noConsole keeps the console output off even with follow (tests).
	noConsole bool
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the default pipeline against built-in API simulators (no credentials needed)",
		Long: `demo starts simulators of the NAVER Cloud Activity Tracer and NHN Cloud
CloudTrail APIs on 127.0.0.1, runs the shipped pipeline (sources, ECS
mapping, masking) against them with a file output, and prints a summary once
the simulated backlog is delivered. With --follow it keeps running on live
simulated events (and prints them) until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&o.follow, "follow", false, "keep running on live simulated events until Ctrl-C")
	cmd.Flags().BoolVar(&o.console, "console", false, "also print every event on stdout (default with --follow)")
	cmd.Flags().StringVar(&o.dir, "dir", "", "directory for data_dir and the output file (default: a new temporary directory)")
	cmd.Flags().IntVar(&o.ncpEvents, "ncp-events", 2000, "backlog of the NAVER Cloud simulator")
	cmd.Flags().IntVar(&o.nhnEvents, "nhn-events", 1500, "backlog of the NHN Cloud simulator")
	return cmd
}

// demoSim is one running simulator.
type demoSim struct {
	source, typ, url string
	requests         func() int64
	close            func()
}

func runDemo(ctx context.Context, o demoOptions, stdout, stderr io.Writer) error {
	reg, err := newRegistry()
	if err != nil {
		return runtimeErr(err)
	}
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "forwarder-demo-"); err != nil {
			return runtimeErr(err)
		}
	}
	outPath := filepath.Join(o.dir, "out", "events.ndjson")

	doc := map[string]any{}
	if err := yaml.Unmarshal(demoPipeline, &doc); err != nil {
		return runtimeErr(fmt.Errorf("embedded demo pipeline: %w", err))
	}
	sources, _ := doc["sources"].(map[string]any)
	env := os.Environ()

	// Simulators, one per source whose type is compiled in.
	var sims []demoSim
	defer func() {
		for _, s := range sims {
			s.close()
		}
	}()
	live := 0.0
	if o.follow {
		live = 1
	}
	for name, raw := range sources {
		src, _ := raw.(map[string]any)
		typ, _ := src["type"].(string)
		if _, ok := reg.Lookup(plugins.KindSource, typ); !ok {
			delete(sources, name)
			continue
		}
		switch typ {
		case ncloud.TypeName:
			sim := ncloud.NewSimulator(ncloud.SimulatorConfig{
				Events: o.ncpEvents, Seed: 1, LiveRate: live,
				// A little weather: every 40th request is refused (429 with
				// Retry-After, or 503) and 2% of events are indexed late.
				FailEvery: 40, RetryAfter: time.Second, LateFraction: 0.02, LateBy: 3 * time.Second,
			})
			url, err := sim.Start("127.0.0.1:0")
			if err != nil {
				return runtimeErr(err)
			}
			sims = append(sims, demoSim{name, typ, url, sim.Requests, func() { _ = sim.Close() }})
			src["endpoint"] = url
			env = append(env, "NCP_ACCESS_KEY="+ncloud.SimAccessKey, "NCP_SECRET_KEY="+ncloud.SimSecretKey)
		case "nhncloud_cloudtrail":
			sim := nhncloud.NewSimulator(nhncloud.SimulatorOptions{
				AppKey: demoNHNAppKey, UserAccessKeyID: demoNHNAccessKey, SecretAccessKey: demoNHNSecret, Seed: 2, RecordRequests: true,
			})
			now := time.Now()
			sim.Generate(o.nhnEvents, now.Add(-29*24*time.Hour), now)
			if o.follow {
				sim.Live(live / 2)
			}
			url, closeFn, err := serveDemo(sim)
			if err != nil {
				return runtimeErr(err)
			}
			sims = append(sims, demoSim{name, typ, url, func() int64 { return int64(len(sim.Requests())) }, closeFn})
			env = append(env, "NHN_CLOUDTRAIL_ENDPOINT="+url, "NHN_APPKEY="+demoNHNAppKey,
				"NHN_USER_ACCESS_KEY_ID="+demoNHNAccessKey, "NHN_SECRET_ACCESS_KEY="+demoNHNSecret)
		default:
			delete(sources, name) // no simulator for it
		}
		if o.follow {
			src["interval"] = "2s"
		}
	}
	sort.Slice(sims, func(i, j int) bool { return sims[i].source < sims[j].source })
	notes := pruneDemoGraph(doc, reg)

	doc["data_dir"] = filepath.Join(o.dir, "data")
	doc["api"] = map[string]any{"address": ""}
	doc["log"] = map[string]any{"level": "warn", "format": "text"}
	outputs, _ := doc["outputs"].(map[string]any)
	archive, _ := outputs["archive"].(map[string]any)
	archive["path"] = outPath
	if (o.follow || o.console) && !o.noConsole {
		outputs["debug"] = map[string]any{"type": "console", "inputs": archive["inputs"]}
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return runtimeErr(err)
	}
	cfg, err := config.Load(config.Options{Path: "demo pipeline", Bytes: data, Environ: env, Registry: reg})
	if err != nil {
		return runtimeErr(fmt.Errorf("demo pipeline: %w", err))
	}

	fmt.Fprintf(stderr, "forwarder demo: %d simulated API(s) on 127.0.0.1; delivering the backlog to %s …\n", len(sims), outPath)
	for _, n := range notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	start := time.Now()
	if _, err := runPipeline(ctx, cfg, runOptions{once: !o.follow, logOut: stderr}); err != nil {
		return err
	}
	return printDemoSummary(stdout, sims, cfg, outPath, time.Since(start), notes)
}

// serveDemo serves h on a free loopback port.
func serveDemo(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// pruneDemoGraph removes the transforms whose type is not compiled in and
// reconnects their readers to their inputs, and drops inputs naming removed
// sources, so the demo runs with whatever components this build has. It
// returns a note for each change.
func pruneDemoGraph(doc map[string]any, reg *plugins.Registry) []string {
	var notes []string
	sources, _ := doc["sources"].(map[string]any)
	transforms, _ := doc["transforms"].(map[string]any)
	outputs, _ := doc["outputs"].(map[string]any)
	replace := map[string][]string{} // removed transform → its inputs
	for name, raw := range transforms {
		t, _ := raw.(map[string]any)
		typ, _ := t["type"].(string)
		if _, ok := reg.Lookup(plugins.KindTransform, typ); !ok {
			replace[name] = toStrings(t["inputs"])
			delete(transforms, name)
			notes = append(notes, fmt.Sprintf("transform %q (type %s) is not in this build; the demo runs without it", name, typ))
		}
	}
	var resolve func(in []string, depth int) []string
	resolve = func(in []string, depth int) []string {
		var out []string
		for _, n := range in {
			if r, ok := replace[n]; ok && depth < 16 {
				out = append(out, resolve(r, depth+1)...)
				continue
			}
			if _, ok := sources[n]; ok {
				out = append(out, n)
				continue
			}
			if _, ok := transforms[n]; ok {
				out = append(out, n)
			}
		}
		return dedupe(out)
	}
	for _, sec := range []map[string]any{transforms, outputs} {
		for _, raw := range sec {
			c, _ := raw.(map[string]any)
			c["inputs"] = resolve(toStrings(c["inputs"]), 0)
		}
	}
	sort.Strings(notes)
	return notes
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	if s, ok := v.([]string); ok {
		out = append(out, s...)
	}
	return out
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// demoCounts reads the output file: events per dataset and a sample
// document of each.
func demoCounts(path string) (map[string]int, map[string]string, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	counts, samples := map[string]int{}, map[string]string{}
	total := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		total++
		o, err := plugins.ParseObject(sc.Bytes())
		if err != nil {
			counts["(unreadable)"]++
			continue
		}
		ds, ok := o.GetString("event.dataset")
		if !ok { // no ecs transform: raw API items
			ds = "nhncloud.cloudtrail"
			if _, isNCP := o.GetKey("historyId"); isNCP {
				ds = ncloud.Dataset
			}
		}
		counts[ds]++
		if _, ok := samples[ds]; !ok || (o.Len() > 0 && hasAddress(o) && !strings.Contains(samples[ds], `"ip"`)) {
			samples[ds] = sc.Text()
		}
	}
	return counts, samples, total, sc.Err()
}

func hasAddress(o *plugins.Object) bool {
	_, ok := o.Get("source.ip")
	return ok
}

func printDemoSummary(w io.Writer, sims []demoSim, cfg *config.Config, outPath string, took time.Duration, notes []string) error {
	counts, samples, total, err := demoCounts(outPath)
	if err != nil && !os.IsNotExist(err) {
		return runtimeErr(fmt.Errorf("reading %s: %w", outPath, err))
	}
	datasetOf := map[string]string{ncloud.TypeName: ncloud.Dataset, "nhncloud_cloudtrail": "nhncloud.cloudtrail"}
	fmt.Fprintf(w, "\nforwarder demo: %d events delivered in %s\n\n", total, took.Round(100*time.Millisecond))
	fmt.Fprintln(w, "sources:")
	for _, s := range sims {
		fmt.Fprintf(w, "  %-5s %-24s %6d events  (simulator %s, %d requests incl. injected 429/503 faults)\n",
			s.source, s.typ, counts[datasetOf[s.typ]], s.url, s.requests())
	}
	var chain []string
	for _, c := range cfg.Components {
		if c.Kind == plugins.KindTransform {
			chain = append(chain, c.Name+" ("+c.Type+")")
		}
	}
	if len(chain) > 0 {
		fmt.Fprintf(w, "transforms: %s\n", strings.Join(chain, ", "))
	}
	fmt.Fprintln(w, "outputs:")
	for _, c := range cfg.Components {
		if c.Kind != plugins.KindOutput {
			continue
		}
		if c.Type == "file" {
			fmt.Fprintf(w, "  %-5s file    %6d events  → %s\n", c.Name, total, outPath)
		} else {
			fmt.Fprintf(w, "  %-5s %s\n", c.Name, c.Type)
		}
	}
	masked := ""
	for _, c := range cfg.Components {
		if c.Type == "mask" {
			ip, _ := c.Raw["ip"].(map[string]any)
			email, _ := c.Raw["email"].(map[string]any)
			masked = fmt.Sprintf("addresses: masked by transform %q (ip: %v, email: %v)", c.Name, orDefault(ip["mode"]), orDefault(email["mode"]))
		}
	}
	if masked != "" {
		fmt.Fprintln(w, masked)
	} else {
		fmt.Fprintln(w, "addresses: NOT masked (no mask transform in this build)")
	}
	for _, n := range notes {
		fmt.Fprintln(w, "note:", n)
	}
	keys := make([]string, 0, len(samples))
	for k := range samples {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := samples[k]
		if len(s) > 700 {
			s = s[:700] + " …"
		}
		fmt.Fprintf(w, "\nsample %s document:\n  %s\n", k, s)
	}
	fmt.Fprintf(w, "\nRead them all: head %s\n", outPath)
	return nil
}

func orDefault(v any) any {
	if v == nil {
		return "default"
	}
	return v
}
