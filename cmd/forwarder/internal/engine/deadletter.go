package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// deadLetters appends events that can never be delivered to
// <data_dir>/dead_letter/<component_id>.ndjson, one JSON object per line
// with the time, component, reason and the event document, fsynced before
// the batch is acknowledged.
type deadLetters struct {
	dir string
	mu  sync.Mutex
	fs  map[string]*os.File
}

func newDeadLetters(dataDir string) *deadLetters {
	return &deadLetters{dir: filepath.Join(dataDir, "dead_letter"), fs: map[string]*os.File{}}
}

// Path returns the dead-letter file of a component.
func (d *deadLetters) Path(component string) string {
	return filepath.Join(d.dir, component+".ndjson")
}

func (d *deadLetters) write(component string, events []*plugins.Event, reasons []error, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.fs[component]
	if f == nil {
		if err := os.MkdirAll(d.dir, 0o750); err != nil {
			return fmt.Errorf("dead-letter directory %s: %w", d.dir, err)
		}
		var err error
		f, err = os.OpenFile(d.Path(component), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("dead-letter file %s: %w", d.Path(component), err)
		}
		d.fs[component] = f
	}
	buf := make([]byte, 0, 1024*len(events))
	ts := now.UTC().Format(time.RFC3339Nano)
	for i, ev := range events {
		buf = append(buf, `{"time":`...)
		buf = plugins.AppendJSONString(buf, ts)
		buf = append(buf, `,"component":`...)
		buf = plugins.AppendJSONString(buf, component)
		buf = append(buf, `,"source":`...)
		buf = plugins.AppendJSONString(buf, ev.Meta.Source)
		buf = append(buf, `,"event_id":`...)
		buf = plugins.AppendJSONString(buf, ev.Meta.ID)
		buf = append(buf, `,"reason":`...)
		buf = plugins.AppendJSONString(buf, reasons[i].Error())
		buf = append(buf, `,"event":`...)
		buf = ev.AppendJSON(buf)
		buf = append(buf, "}\n"...)
	}
	if _, err := f.Write(buf); err != nil {
		return fmt.Errorf("dead-letter file %s: %w", d.Path(component), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("dead-letter file %s: %w", d.Path(component), err)
	}
	return nil
}

func (d *deadLetters) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range d.fs {
		_ = f.Close()
	}
	d.fs = map[string]*os.File{}
}
