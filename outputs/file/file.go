package file

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/auditforwarder/forwarder/plugins"
)

// fileOutput appends batches and makes them durable with group commit:
// concurrent Writes (delivery.max_in_flight) encode in parallel, append in
// turn, and one fsync covers every batch appended before it started, so a
// slow disk costs one fsync per round rather than one per batch.
type fileOutput struct {
	cfg *Config
	set plugins.Settings

	mu       sync.Mutex // guards the fields below
	f        *os.File
	regular  bool // f is a regular file: fsync and tail repair apply
	size     int64
	appended uint64 // batches appended since Start, numbering each one
	synced   uint64 // batches up to this number are durable
	broken   uint64 // batches up to this number may be lost: an fsync failed

	syncMu sync.Mutex // one fsync at a time
	bufs   sync.Pool  // *[]byte encode buffers
}

var _ plugins.Output = (*fileOutput)(nil)

func newFileOutput(set plugins.Settings, cfg *Config) *fileOutput {
	return &fileOutput{cfg: cfg, set: set}
}

func (o *fileOutput) Start(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.open()
}

func (o *fileOutput) open() error {
	if err := os.MkdirAll(filepath.Dir(o.cfg.Path), 0o750); err != nil {
		return fmt.Errorf("create directory for %s: %w", o.cfg.Path, err)
	}
	f, err := os.OpenFile(o.cfg.Path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open %s: %w", o.cfg.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat %s: %w", o.cfg.Path, err)
	}
	o.regular = st.Mode().IsRegular()
	size := st.Size()
	if size > 0 && o.regular {
		// A crash can leave a torn last line: it was never acknowledged
		// (fsync had not returned), so cut it off and keep valid NDJSON.
		if size, err = truncateTornTail(f, size); err != nil {
			_ = f.Close()
			return fmt.Errorf("repair %s: %w", o.cfg.Path, err)
		}
	}
	o.f, o.size = f, size
	return nil
}

// truncateTornTail truncates f after its last newline when it does not end
// with one, and returns the new size.
func truncateTornTail(f *os.File, size int64) (int64, error) {
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return size, err
	}
	if last[0] == '\n' {
		return size, nil
	}
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(0, end-chunk)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && n == 0 {
			return size, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep := start + int64(i) + 1
			return keep, f.Truncate(keep)
		}
		end = start
	}
	return 0, f.Truncate(0)
}

// Write appends the batch and returns once it is durable (fsynced, when
// sync is on and the path is a regular file). A failed write is retried
// whole by the engine; the partial tail it may leave is a duplicate prefix
// at worst, never a gap.
func (o *fileOutput) Write(_ context.Context, events []*plugins.Event) error {
	bp, _ := o.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	buf := (*bp)[:0]
	for _, ev := range events {
		buf = ev.AppendJSON(buf)
		buf = append(buf, '\n')
	}
	gen, err := o.appendBatch(buf)
	if cap(buf) <= 16<<20 { // do not pin a huge buffer after an unusual batch
		*bp = buf
		o.bufs.Put(bp)
	}
	if err != nil || !o.cfg.Sync {
		return err
	}
	return o.syncUpTo(gen)
}

// appendBatch appends buf and returns the batch's number.
func (o *fileOutput) appendBatch(buf []byte) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		if err := o.open(); err != nil {
			return 0, err
		}
	}
	if _, err := o.f.Write(buf); err != nil {
		o.reset()
		return 0, fmt.Errorf("write %s: %w", o.cfg.Path, err)
	}
	o.size += int64(len(buf))
	o.appended++
	gen := o.appended
	if !o.regular {
		o.synced = gen // nothing to fsync on a pipe or a device
	}
	if o.cfg.MaxBytes > 0 && o.size >= o.cfg.MaxBytes && o.regular {
		// The file is closed by the rotation: make what it holds durable
		// first, for every batch in it.
		if err := o.f.Sync(); err != nil {
			o.broken = gen
			o.reset()
			return 0, fmt.Errorf("fsync %s: %w", o.cfg.Path, err)
		}
		o.synced = gen
		if err := o.rotate(); err != nil {
			// The batch is written and synced; rotation is retried next time.
			o.set.Logger.Warn("rotation failed", "path", o.cfg.Path, "error", err)
		}
	}
	return gen, nil
}

// syncUpTo returns once batch gen is durable: by an fsync of its own, or
// one another Write started after gen was appended.
func (o *fileOutput) syncUpTo(gen uint64) error {
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	o.mu.Lock()
	if o.synced >= gen {
		o.mu.Unlock()
		return nil
	}
	if o.broken >= gen || o.f == nil {
		o.mu.Unlock()
		return fmt.Errorf("fsync %s: an earlier fsync failed; the batch is written again", o.cfg.Path)
	}
	f, target := o.f, o.appended
	o.mu.Unlock()
	err := f.Sync()
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		o.synced = max(o.synced, target)
		return nil
	}
	if o.synced >= gen { // a rotation synced and closed f meanwhile
		return nil
	}
	// After a failed fsync the kernel may have dropped the dirty pages:
	// every batch appended so far is suspect and is written again.
	o.broken = max(o.broken, o.appended)
	if o.f == f {
		o.reset()
	}
	return fmt.Errorf("fsync %s: %w", o.cfg.Path, err)
}

func (o *fileOutput) reset() {
	if o.f != nil {
		_ = o.f.Close()
		o.f = nil
	}
}

func (o *fileOutput) rotate() error {
	if err := o.f.Close(); err != nil {
		return err
	}
	o.f = nil
	for i := o.cfg.MaxFiles - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", o.cfg.Path, i), fmt.Sprintf("%s.%d", o.cfg.Path, i+1))
	}
	if err := os.Rename(o.cfg.Path, o.cfg.Path+".1"); err != nil {
		return err
	}
	return o.open()
}

func (o *fileOutput) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	var err error
	if o.regular {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.f = nil
	return err
}

type console struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

var _ plugins.Output = (*console)(nil)

func (c *console) Start(context.Context) error { return nil }
func (c *console) Close(context.Context) error { return nil }

func (c *console) Write(_ context.Context, events []*plugins.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf := c.buf[:0]
	for _, ev := range events {
		buf = ev.AppendJSON(buf)
		buf = append(buf, '\n')
	}
	c.buf = buf
	if _, err := c.w.Write(buf); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}
