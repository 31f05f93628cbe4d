package plugintest

import (
	"bytes"
	"os"
	"testing"
)

// READMEShowsSample fails t unless the first ```yaml block of the
// README.md in the test's directory is sample, byte for byte: the
// configuration example users copy can never drift from the sample the
// factory returns and the tests decode.
func READMEShowsSample(t testing.TB, sample []byte) {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := bytes.Cut(readme, []byte("```yaml\n"))
	if !ok {
		t.Fatal("README.md has no ```yaml block")
	}
	block, _, ok := bytes.Cut(after, []byte("```"))
	if !ok {
		t.Fatal("README.md's yaml block is not closed")
	}
	if !bytes.Equal(block, sample) {
		t.Fatalf("README.md's configuration example drifted from sample.yaml:\n--- README\n%s--- sample.yaml\n%s", block, sample)
	}
}
