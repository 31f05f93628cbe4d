package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
	filesource "github.com/auditforwarder/forwarder/sources/file"
	"github.com/auditforwarder/forwarder/sources/nhncloud"
	"github.com/auditforwarder/forwarder/transforms/ecs"
)

// goldenNDJSON turns the ecs golden inputs of a dataset into one NDJSON file.
func goldenNDJSON(t *testing.T, dataset, out string) int {
	t.Helper()
	inputs, err := filepath.Glob(filepath.Join("..", "..", "testdata", dataset, "*", "input.json"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs for %s: %v", dataset, err)
	}
	var b bytes.Buffer
	n := 0
	for _, in := range inputs {
		if _, err := os.Stat(filepath.Join(filepath.Dir(in), "config.yaml")); err == nil {
			continue // needs its own transform config
		}
		raw, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&b, raw); err != nil {
			t.Fatal(err)
		}
		b.WriteByte('\n')
		n++
	}
	writeFile(t, out, b.String())
	return n
}

func TestForwarderTest(t *testing.T) {
	dir := t.TempDir()
	ncp := filepath.Join(dir, "ncp.ndjson")
	nNCP := goldenNDJSON(t, "ncloud.activity_tracer", ncp)
	nhn := filepath.Join(dir, "nhn.ndjson")
	nNHN := goldenNDJSON(t, "nhncloud.cloudtrail", nhn)

	// Every golden input maps to a valid document.
	code, stdout, stderr := runCLI("test", "--dataset", "ncloud.activity_tracer", ncp)
	if code != 0 || stdout != "" || !strings.Contains(stderr, fmt.Sprintf("checked %d documents: 0 violate", nNCP)) {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI("test", "--dataset", "nhncloud.cloudtrail", "--print", "--keep-original", nhn)
	if code != 0 || strings.Count(stdout, "\n") != nNHN || !strings.Contains(stdout, `"ecs":{"version":"9.1.0"}`) ||
		!strings.Contains(stdout, `"original":`) {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// Broken items are reported with file, line, id, field and problem.
	bad := filepath.Join(dir, "bad.ndjson")
	writeFile(t, bad, strings.Join([]string{
		`{"historyId":"ok1","eventTime":1728529785024,"productName":"Server","actionDisplayName":"Create Server","actionResultType":"SUCCESS"}`,
		``,
		`{"historyId":"noaction","eventTime":1728529785024,"productName":"Server","actionResultType":"SUCCESS"}`,
		`not json`,
		`{"historyId":"noprovider","eventTime":1728529785024,"actionDisplayName":"Login"}`,
	}, "\n")+"\n")
	code, stdout, stderr = runCLI("test", "--dataset", "ncloud.activity_tracer", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{
		bad + ":3: event.id=noaction: event.action: is required",
		bad + ":4: line is not a JSON object",
		bad + ":5: event.id=noprovider: event.provider: is required",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, ":1:") || !strings.Contains(stderr, "3 of 4 documents violate the ECS contract") {
		t.Errorf("stdout: %s\nstderr: %s", stdout, stderr)
	}

	// Without --dataset the item's event.dataset decides; without either,
	// the document is reported.
	mixed := filepath.Join(dir, "mixed.ndjson")
	writeFile(t, mixed, `{"event.dataset":"nhncloud.cloudtrail","eventTime":"2019-09-04T10:31:49.348+0000","eventId":"event_id.iam.member.login"}`+"\n"+
		`{"eventTime":"2019-09-04T10:31:49.348+0000"}`+"\n")
	code, stdout, _ = runCLI("test", mixed)
	if code != 1 || !strings.Contains(stdout, mixed+":2: event.dataset: unknown") || strings.Contains(stdout, ":1:") {
		t.Fatalf("exit %d\nstdout: %s", code, stdout)
	}

	// The transform's settings can come from pipeline.yaml.
	pipeline := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, pipeline, fmt.Sprintf(`
data_dir: %s/data
api: {address: ""}
sources:
  replay: {type: file, path: %s, dataset: ncloud.activity_tracer}
transforms:
  normalize:
    type: ecs
    inputs: [replay]
    rules:
      - {name: servers, match: [server], category: [host]}
outputs:
  out: {type: file, inputs: [normalize], path: %s/out.ndjson}
`, dir, ncp, dir))
	code, stdout, stderr = runCLI("test", "-c", pipeline, "--dataset", "ncloud.activity_tracer", "--print", bad)
	if code != 1 || !strings.Contains(stdout, `"category":["host"]`) {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if code, _, stderr = runCLI("test", "-c", pipeline, "--transform", "nope", ncp); code != 1 || !strings.Contains(stderr, `no ecs transform named "nope"`) {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if code, _, stderr = runCLI("test", "--dataset", "aws", ncp); code != 1 || !strings.Contains(stderr, "--dataset must be") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if code, _, _ = runCLI("test", filepath.Join(dir, "missing.ndjson")); code != 2 {
		t.Fatalf("missing input: exit %d, want 2", code)
	}
}

// The NHN source, the file source and the ecs transform must give a v1.0
// item (no eventLogUuid) the same id, or replays and re-reads would not
// de-duplicate: check the NHN source's fingerprint against
// plugins.Fingerprint, which the other two use, on every golden item.
func TestFingerprintsAgree(t *testing.T) {
	inputs, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "nhncloud.cloudtrail", "*", "input.json"))
	if len(inputs) == 0 {
		t.Fatal("no golden NHN inputs")
	}
	for _, in := range inputs {
		raw, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		item, err := plugins.ParseObject(raw)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := nhncloud.Fingerprint(item), plugins.Fingerprint(item); a != b {
			t.Errorf("%s: nhncloud.Fingerprint %s, plugins.Fingerprint %s", in, a, b)
		}
		if a, b := nhncloud.EventID(item), filesource.ItemID(nhncloud.Dataset, item); a != b {
			t.Errorf("%s: NHN source id %s, file source id %s", in, a, b)
		}
	}
}

// A replay end to end: the file source reads an archive, the ecs transform
// maps it, the file output writes it; `run --once` returns at the end of
// the archive, and a second run, resuming from the checkpoint, adds nothing.
func TestReplayArchiveOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "archive"), 0o755); err != nil {
		t.Fatal(err)
	}
	n := goldenNDJSON(t, "nhncloud.cloudtrail", filepath.Join(dir, "archive", "2019-09.ndjson"))
	pipeline := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, pipeline, fmt.Sprintf(`
data_dir: %[1]s/data
api: {address: ""}
sources:
  replay: {type: file, path: "%[1]s/archive/*.ndjson", dataset: nhncloud.cloudtrail}
transforms:
  ecs: {type: ecs, inputs: [replay]}
outputs:
  out: {type: file, inputs: [ecs], path: %[1]s/out.ndjson}
`, dir))
	for run := 0; run < 2; run++ {
		if code, stdout, stderr := runCLI("run", "--once", "-c", pipeline); code != 0 {
			t.Fatalf("run %d: exit %d\nstdout: %s\nstderr: %s", run, code, stdout, stderr)
		}
		out, err := os.ReadFile(filepath.Join(dir, "out.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != n {
			t.Fatalf("run %d: %d documents, want %d (once each)", run, len(lines), n)
		}
		ids := map[string]bool{}
		for _, l := range lines {
			doc, err := plugins.ParseObject([]byte(l))
			if err != nil {
				t.Fatal(err)
			}
			if vs := ecs.Check(doc); len(vs) > 0 {
				t.Fatalf("%v\n%s", vs, l)
			}
			id, _ := doc.GetString("event.id")
			ids[id] = true
		}
		if len(ids) != n {
			t.Fatalf("%d distinct ids for %d documents", len(ids), n)
		}
	}
}
