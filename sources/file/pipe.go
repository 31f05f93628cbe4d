package file

import (
	"context"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/auditforwarder/forwarder/plugins"
)

// rawBatch is a batch of lines as read: their bytes back to back in data,
// parsed into events by a pipe worker.
type rawBatch struct {
	recvAt time.Time
	data   []byte
	lines  []lineRef
	cp     plugins.Checkpoint

	events []*plugins.Event
	done   chan struct{}
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
	s     *source
	work  chan *rawBatch
	order chan *rawBatch
	wg    sync.WaitGroup
	done  chan struct{}
	err   error // the first emit error; read after done is closed
}

func newParsePipe(ctx context.Context, cancel context.CancelFunc, s *source, emit plugins.Emit) *parsePipe {
	workers := runtime.GOMAXPROCS(0)
	p := &parsePipe{s: s,
		work: make(chan *rawBatch), order: make(chan *rawBatch, workers), done: make(chan struct{})}
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for b := range p.work {
				p.parse(b)
				close(b.done)
			}
		}()
	}
	go func() {
		defer close(p.done)
		for b := range p.order {
			select {
			case <-b.done:
			case <-ctx.Done():
				return
			}
			if p.err != nil || len(b.events) == 0 && b.cp == nil {
				continue
			}
			if err := emit(ctx, plugins.Batch{Events: b.events, Checkpoint: b.cp}); err != nil {
				p.err = err
				cancel()
			}
		}
	}()
	return p
}

// submit queues b; it fails once ctx is done (an emit failed, or the
// source is stopping).
func (p *parsePipe) submit(ctx context.Context, b *rawBatch) error {
	b.done = make(chan struct{})
	select {
	case p.order <- b:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case p.work <- b:
		return nil
	case <-ctx.Done():
		close(b.done)
		return ctx.Err()
	}
}

// close waits until every submitted batch is emitted and returns the first
// emit error.
func (p *parsePipe) close() error {
	close(p.work)
	close(p.order)
	<-p.done
	p.wg.Wait()
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
	b.data = nil
	b.events = make([]*plugins.Event, 0, len(b.lines))
	slab := make([]plugins.Event, len(b.lines)) // one allocation for the batch's events
	ds := p.s.cfg.Dataset
	var dp plugins.DocParser // the batch's documents share its allocations
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
	b.lines = nil
}
