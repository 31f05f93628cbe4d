// Package forwardertest builds the forwarder binary for the end-to-end
// tests of the component packages, which run the real process against real
// services. It is imported by tests only.
package forwardertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The binary is built once per test process (a test binary is one
// package) and shared by its tests.
var (
	once sync.Once
	dir  string
	bin  string
	err  error
)

// Binary returns the path of cmd/forwarder, built on first use. Call Main
// from the package's TestMain so the build is removed afterwards.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir, err = os.MkdirTemp("", "forwarder-test-bin-")
		if err != nil {
			return
		}
		bin = filepath.Join(dir, "forwarder")
		out, berr := exec.Command("go", "build", "-o", bin, "github.com/auditforwarder/forwarder/cmd/forwarder").CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build ./cmd/forwarder: %v\n%s", berr, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Main runs the package's tests, removes the binary and exits.
func Main(m *testing.M) {
	code := m.Run()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}
