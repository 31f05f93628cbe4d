package checkpoint

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestTrackerNeverSkipsAHole(t *testing.T) {
	tr := NewTracker(nil)
	s0 := tr.Add([]byte("0"))
	s1 := tr.Add([]byte("1"))
	s2 := tr.Add([]byte("2"))
	if _, ok := tr.Ack(s2); ok {
		t.Fatal("acking 2 before 0 and 1 must not commit")
	}
	if _, ok := tr.Ack(s1); ok {
		t.Fatal("acking 1 before 0 must not commit")
	}
	cp, ok := tr.Ack(s0)
	if !ok || string(cp) != "2" {
		t.Fatalf("acking 0 must commit 2, got %q %v", cp, ok)
	}
	if tr.Pending() != 0 {
		t.Fatalf("pending = %d", tr.Pending())
	}
	if _, ok := tr.Ack(s0); ok {
		t.Fatal("double ack must be ignored")
	}
}

// Property: for random ack orders, the committed checkpoint is always the
// highest contiguous acknowledged batch.
func TestTrackerRandomOrder(t *testing.T) {
	for round := 0; round < 200; round++ {
		tr := NewTracker(nil)
		n := 1 + rand.IntN(50)
		seqs := make([]uint64, n)
		for i := range seqs {
			seqs[i] = tr.Add([]byte(strconv.Itoa(i)))
		}
		acked := make([]bool, n)
		committed := -1
		for _, i := range rand.Perm(n) {
			acked[i] = true
			cp, ok := tr.Ack(seqs[i])
			want := -1
			for j := 0; j < n && acked[j]; j++ {
				want = j
			}
			if ok {
				got, _ := strconv.Atoi(string(cp))
				if got != want || got <= committed {
					t.Fatalf("round %d: committed %d, want %d (prev %d)", round, got, want, committed)
				}
				committed = got
			} else if want != committed {
				t.Fatalf("round %d: no commit but contiguous prefix is %d (committed %d)", round, want, committed)
			}
		}
		if committed != n-1 {
			t.Fatalf("round %d: final committed %d of %d", round, committed, n)
		}
	}
}

func TestTrackerNilCheckpointBatches(t *testing.T) {
	tr := NewTracker([]byte("start"))
	a := tr.Add(nil) // a batch that carries no checkpoint
	b := tr.Add([]byte("b"))
	if _, ok := tr.Ack(a); ok {
		t.Fatal("batch without checkpoint must not commit")
	}
	if cp, ok := tr.Ack(b); !ok || string(cp) != "b" {
		t.Fatal("b")
	}
	if string(tr.Last()) != "b" {
		t.Fatal("Last")
	}
}

func TestBoltStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "checkpoints.db")
	st, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if cp, err := st.Load(ctx, "ncp"); err != nil || cp != nil {
		t.Fatalf("empty load: %q %v", cp, err)
	}
	if err := st.Save(ctx, "ncp", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if cp, _ := st.Load(ctx, "ncp"); string(cp) != "v1" {
		t.Fatalf("reopened: %q", cp)
	}
}

func TestBoltStoreCorruptFileNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoints.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 2048)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenBolt(path)
	if err == nil {
		t.Fatal("corrupt store opened")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("error does not name the file and problem: %v", err)
	}
}

func TestBoltStoreUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores permissions; use a path under a regular file instead
		dir := t.TempDir()
		f := filepath.Join(dir, "file")
		_ = os.WriteFile(f, nil, 0o600)
		_, err := OpenBolt(filepath.Join(f, "checkpoints.db"))
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Fatalf("got %v", err)
		}
		return
	}
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o500)
	_, err := OpenBolt(filepath.Join(dir, "checkpoints.db"))
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("got %v", err)
	}
}

// TestBoltStoreDamagedFiles damages a real store in the ways a crash or a
// bad disk can: every one must give an error naming the file, never a
// crash (a truncated file used to fault inside bbolt's mmap).
func TestBoltStoreDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	goodPath := filepath.Join(dir, "good.db")
	st, err := OpenBolt(goodPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := st.Save(context.Background(), "src"+strconv.Itoa(i), []byte(strings.Repeat("x", 300))); err != nil {
			t.Fatal(err)
		}
	}
	_ = st.Close()
	good, err := os.ReadFile(goodPath)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	cases := map[string][]byte{
		"truncated to 3 pages": good[:3*page],
		"truncated to 1 page":  good[:page],
		"half a meta page":     good[:100],
		"zeroed meta pages":    append(make([]byte, 2*page), good[2*page:]...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "checkpoints.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := OpenBolt(path)
			if err == nil {
				// Opened: reads and writes must still not crash.
				_, lerr := st.Load(context.Background(), "src1")
				serr := st.Save(context.Background(), "src1", []byte("y"))
				_ = st.Close()
				if lerr == nil && serr == nil {
					t.Fatalf("damaged store opened and worked; the damage was not detected")
				}
				return
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("error does not name the file as corrupt: %v", err)
			}
		})
	}
}
