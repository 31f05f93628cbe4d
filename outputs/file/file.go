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

type fileOutput struct {
	cfg *Config
	set plugins.Settings

	mu   sync.Mutex
	f    *os.File
	size int64
	buf  []byte
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
	size := st.Size()
	if size > 0 {
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

// Write appends the batch and fsyncs it before returning. A failed write
// is retried whole by the engine; the partial tail it may leave is a
// duplicate prefix at worst, never a gap.
func (o *fileOutput) Write(_ context.Context, events []*plugins.Event) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		if err := o.open(); err != nil {
			return err
		}
	}
	buf := o.buf[:0]
	for _, ev := range events {
		buf = ev.AppendJSON(buf)
		buf = append(buf, '\n')
	}
	o.buf = buf
	if _, err := o.f.Write(buf); err != nil {
		o.reset()
		return fmt.Errorf("write %s: %w", o.cfg.Path, err)
	}
	if o.cfg.Sync {
		if err := o.f.Sync(); err != nil {
			o.reset()
			return fmt.Errorf("fsync %s: %w", o.cfg.Path, err)
		}
	}
	o.size += int64(len(buf))
	if o.cfg.MaxBytes > 0 && o.size >= o.cfg.MaxBytes {
		if err := o.rotate(); err != nil {
			// The batch is written and synced; rotation is retried next time.
			o.set.Logger.Warn("rotation failed", "path", o.cfg.Path, "error", err)
		}
	}
	if cap(o.buf) > 16<<20 {
		o.buf = nil // do not pin a huge buffer after an unusual batch
	}
	return nil
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
	err := o.f.Sync()
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
