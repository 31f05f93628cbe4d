package file

import (
	"context"
	"runtime"
	"time"
	"unsafe"

	"github.com/auditforwarder/forwarder/internal/ordered"
	"github.com/auditforwarder/forwarder/plugins"
)

// rawBatch is a batch of lines as read: their bytes back to back in data,
// parsed into events by a pipe worker.
type rawBatch struct {
	recvAt time.Time
	mem    *batchMem
	data   []byte
	lines  []lineRef
	cp     plugins.Checkpoint

	events []*plugins.Event
}

// batchMem is the memory of one batch that the source reuses once the
// pipeline is done with the batch (plugins.Batch.Release): the lines'
// bytes, which the events' strings point into, the events, and their
// documents' objects.
// A replay allocates little else per event, so this spares the garbage
// collector a large share of its work.
type batchMem struct {
	data   []byte
	lines  []lineRef
	slab   []plugins.Event
	events []*plugins.Event
	docs   plugins.DocParser // the documents' objects and boxed values
}

// getMem returns a released batch's memory, or new memory for a batch.
func (s *source) getMem() *batchMem {
	if m, ok := s.mem.Get().(*batchMem); ok {
		return m
	}
	n := s.cfg.BatchSize
	return &batchMem{data: make([]byte, 0, min(n*1024, 4<<20)), lines: make([]lineRef, 0, n)}
}

// release takes back the memory of a batch nothing reads any more. The
// events are cleared first: a pooled batch must not keep documents alive.
func (s *source) release(b *rawBatch) {
	m := b.mem
	if m == nil {
		return
	}
	b.mem = nil
	m.docs.Reuse()
	clear(m.slab)
	clear(m.events[:cap(m.events)])
	clear(m.lines[:cap(m.lines)])
	if s.poison {
		d := m.data[:cap(m.data)]
		for i := range d {
			d[i] = 0xff
		}
	}
	if cap(m.data) > 16<<20 { // an unusual batch: do not pin its buffer
		return
	}
	s.mem.Put(m)
}

type lineRef struct {
	start, end int
	path       string // the file and offset, for messages about the line
	offset     int64
}

// parsePipe parses batches on every core and emits them in the order they
// were read: reading a file is cheap, parsing JSON is not, and one
// goroutine parsing would bound a replay to a single core.
type parsePipe struct {
	s    *source
	pipe *ordered.Pipe[*rawBatch]
	err  error // the first emit error; read after the pipe is closed
}

func newParsePipe(ctx context.Context, cancel context.CancelFunc, s *source, emit plugins.Emit) *parsePipe {
	p := &parsePipe{s: s}
	p.pipe = ordered.New(ctx, runtime.GOMAXPROCS(0), func() func(*rawBatch) { return p.parse }, func(b *rawBatch) {
		if p.err != nil || len(b.events) == 0 && b.cp == nil {
			p.s.release(b)
			return
		}
		// On an error the engine may hold the batch or not: its memory
		// is then left to the garbage collector.
		if err := emit(ctx, plugins.Batch{Events: b.events, Checkpoint: b.cp, Release: func() { p.s.release(b) }}); err != nil {
			p.err = err
			cancel()
		}
	})
	return p
}

// submit queues b; it fails once ctx is done (an emit failed, or the
// source is stopping).
func (p *parsePipe) submit(ctx context.Context, b *rawBatch) error {
	return p.pipe.Submit(ctx, b)
}

// close waits until every submitted batch is emitted and returns the first
// emit error.
func (p *parsePipe) close() error {
	p.pipe.Close()
	return p.err
}

// parse turns b's lines into events; lines that are not JSON objects are
// counted and logged by position, never by content.
func (p *parsePipe) parse(b *rawBatch) {
	// The events' strings point into the batch's buffer, which nothing
	// writes to once it is handed over: no copy per line, nor per batch.
	var data string
	if len(b.data) > 0 {
		data = unsafe.String(&b.data[0], len(b.data))
	}
	m := b.mem
	m.data, m.lines = b.data[:0], b.lines[:0] // keep what append grew
	b.data = nil
	if cap(m.slab) < len(b.lines) {
		m.slab = make([]plugins.Event, len(b.lines)) // one allocation for the batch's events
		m.events = make([]*plugins.Event, 0, len(b.lines))
	}
	slab := m.slab[:len(b.lines)]
	b.events = m.events[:0]
	ds := p.s.cfg.Dataset
	dp := &m.docs // the batch's documents share its allocations
	for _, l := range b.lines {
		item, err := dp.ParseObject(data[l.start:l.end])
		if err != nil {
			p.s.invalid.Inc()
			// The line may hold personal data: log where it is, not what it says.
			p.s.set.Logger.Warn("line is not a JSON object; skipped", "file", l.path, "offset", l.offset, "error", err)
			continue
		}
		p.s.ok.Inc()
		ev := &slab[len(b.events)]
		*ev = plugins.Event{Fields: item, Meta: plugins.Meta{
			Source:   p.s.set.ID,
			Dataset:  ds,
			ID:       ItemID(ds, item),
			Time:     itemTime(ds, item),
			Received: b.recvAt,
		}}
		b.events = append(b.events, ev)
	}
	m.events = b.events
	b.lines = nil
}
