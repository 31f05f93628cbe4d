package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

// replayItem is Activity Tracer item i, with fields that name i so that a
// document holding another item's data shows.
func replayItem(i int) string {
	return fmt.Sprintf(`{"historyId":"h%06d","nrn":"nrn:PUB:VPC:KR:2401234:RouteTable/%d","eventTime":%d,"productName":"VPC",`+
		`"regionCode":"KR","resourceType":"RouteTable","resourceId":"%d","resourceName":"res-%d","actionDisplayName":"Change Route Table",`+
		`"actionResultType":"SUCCESS","sourceType":"CONSOLE","sourceIp":"203.0.%d.%d","productData":{"userName":"user%d@example.com","memberNo":"%d"}}`,
		i, i, 1727740800000+int64(i), i, i, i%250, i%250+1, i, i)
}

// TestReplayDocumentsMatchTheirItems runs a real forwarder over a replay
// with many small batches, fanned out to a raw archive (copies) and
// through ecs and mask to a second file. The batches' memory is recycled
// as soon as they are delivered (plugins.Batch.Release, OnRelease): every
// document written must still be the one made from its own item, and the
// raw archive must hold the items byte for byte.
func TestReplayDocumentsMatchTheirItems(t *testing.T) {
	const n = 30000
	dir := t.TempDir()
	var in strings.Builder
	for i := 0; i < n; i++ {
		in.WriteString(replayItem(i) + "\n")
	}
	writeFile(t, filepath.Join(dir, "items.ndjson"), in.String())
	cfg := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
data_dir: %[1]s/data
api: {address: ""}
log: {level: warn}
sources:
  replay: {type: file, path: %[1]s/items.ndjson, dataset: ncloud.activity_tracer, batch_size: 50}
transforms:
  ecs: {type: ecs, inputs: [replay]}
  mask: {type: mask, inputs: [ecs]}
outputs:
  siem: {type: file, inputs: [mask], path: %[1]s/out/siem.ndjson, delivery: {max_in_flight: 4}}
  raw: {type: file, inputs: [replay], path: %[1]s/out/raw.ndjson}
`, dir))
	cmd := exec.Command(forwarderBin, "run", "--once", "-c", cfg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	eachLine(t, filepath.Join(dir, "out", "raw.ndjson"), func(line string) {
		o, err := plugins.ParseObjectString(line)
		if err != nil {
			t.Fatalf("raw archive: %v: %s", err, line)
		}
		id, _ := o.GetString("historyId")
		var i int
		if _, err := fmt.Sscanf(id, "h%d", &i); err != nil || line != replayItem(i) {
			t.Fatalf("raw archive holds %s, not item %q as read", line, id)
		}
		seen["raw "+id] = true
	})
	eachLine(t, filepath.Join(dir, "out", "siem.ndjson"), func(line string) {
		o, err := plugins.ParseObjectString(line)
		if err != nil {
			t.Fatalf("siem: %v: %s", err, line)
		}
		id, _ := o.GetString("event.id")
		var i int
		if _, err := fmt.Sscanf(id, "h%d", &i); err != nil {
			t.Fatalf("siem document without its item's id: %s", line)
		}
		for path, want := range map[string]string{
			"ncloud.activity_tracer.nrn":                  fmt.Sprintf("nrn:PUB:VPC:KR:2401234:RouteTable/%d", i),
			"ncloud.activity_tracer.resourceName":         fmt.Sprintf("res-%d", i),
			"ncloud.activity_tracer.productData.memberNo": fmt.Sprint(i),
			"source.ip":  fmt.Sprintf("203.0.%d.0", i%250),
			"user.email": "u***@example.com",
		} {
			if got, _ := o.GetString(path); got != want {
				t.Fatalf("document of item %d: %s = %q, want %q: %s", i, path, got, want, line)
			}
		}
		seen["siem "+id] = true
	})
	if len(seen) != 2*n {
		t.Fatalf("%d distinct documents in the two outputs, want %d", len(seen), 2*n)
	}
}
