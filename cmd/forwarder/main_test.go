package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// forwarderBin is the forwarder built once for the tests that run it as a
// real subprocess (crash and signal tests).
var forwarderBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "forwarder-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	forwarderBin = filepath.Join(dir, "forwarder")
	cmd := exec.Command("go", "build", "-o", forwarderBin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building forwarder:", err)
		os.Exit(2)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runCLI runs the CLI in process and returns exit code, stdout and stderr.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := execute(args, &out, &errb)
	return code, out.String(), errb.String()
}

// readIDs reads an NDJSON file of events and counts each event.id; a line
// that is not valid JSON fails the test.
func readIDs(t *testing.T, paths ...string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, p := range paths {
		line := 0
		eachLine(t, p, func(text string) {
			line++
			var doc struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			}
			if err := json.Unmarshal([]byte(text), &doc); err != nil {
				t.Fatalf("%s:%d: invalid JSON line: %v", p, line, err)
			}
			ids[doc.Event.ID]++
		})
	}
	return ids
}

// eachLine calls fn with every line of the file at path.
func eachLine(t *testing.T, path string, fn func(string)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4<<20), 4<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func init() {
	// The subprocess tests are I/O bound; keep the race detector's
	// goroutine limit far away.
	_ = runtime.NumCPU()
}
