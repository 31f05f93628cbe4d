// Package file is the `file` source: it replays exported audit archives
// (NCP Activity Tracer exports, NHN CloudTrail downloads, anything older
// than the APIs' 30-day / 3-month windows) through the same ecs, mask and
// output path as the API sources. Each line of each file matched by the
// `path` glob is one raw API item of the configured dataset.
//
// Files are read in lexical order of their absolute paths. The checkpoint
// is the position after the last line of a batch, {"file": path, "offset":
// bytes}: every matched file sorting before `file` is done, and `file` is
// read up to `offset`. A restarted source resumes there, so nothing is
// re-read and nothing is skipped. Name archives so that they sort in the
// order they should be read (date-stamped names do); a file that appears
// later but sorts before the checkpoint's file is not read, and a file that
// shrank below its checkpointed offset is read again from its start.
//
// With `forwarder run --once`, Run returns at the end of every matched
// file. Otherwise the source keeps watching: every poll_interval it matches
// the glob again and reads new files and lines appended to the last one.
// A last line without a newline is read at the end in --once mode, or as
// soon as a later file exists; until then it may still be being written.
//
// Every event carries Meta.ID (historyId, eventLogUuid, or
// plugins.Fingerprint of the item — the same id the API sources give the
// same item), Meta.Time (the item's eventTime) and Meta.Received (when the
// line was read).
package file

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditforwarder/forwarder/plugins"
)

type source struct {
	cfg *Config
	set plugins.Settings

	lines   *prometheus.CounterVec
	ok      prometheus.Counter
	invalid prometheus.Counter
	tooLong prometheus.Counter
	files   prometheus.Counter

	// mem recycles the memory of delivered batches (see batchMem).
	mem sync.Pool
	// poison makes a released batch's bytes unreadable garbage, so tests
	// catch any component still reading an event after delivery.
	poison bool
}

var _ plugins.Source = (*source)(nil)

func newSource(set plugins.Settings, cfg *Config) (*source, error) {
	if set.Now == nil {
		set.Now = time.Now
	}
	s := &source{cfg: cfg, set: set}
	s.lines = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "forwarder_file_source_lines_total",
		Help: "Lines read by the file source, by result: ok, invalid (not a JSON object), too_long (over max_line_bytes).",
	}, []string{"result"})
	s.files = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "forwarder_file_source_files_completed_total",
		Help: "Files the file source read to their end.",
	})
	if set.Metrics != nil {
		if err := set.Metrics.Register(s.lines); err != nil {
			return nil, err
		}
		if err := set.Metrics.Register(s.files); err != nil {
			return nil, err
		}
	}
	s.ok = s.lines.WithLabelValues("ok")
	s.invalid = s.lines.WithLabelValues("invalid")
	s.tooLong = s.lines.WithLabelValues("too_long")
	return s, nil
}

func (s *source) Start(context.Context) error {
	if s.set.Status != nil {
		s.set.Status.SetStatus(nil)
	}
	return nil
}

func (s *source) Close(context.Context) error { return nil }

// position is the checkpoint: everything up to offset in file is delivered,
// and every file sorting before it.
type position struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
}

func decodeCheckpoint(cp plugins.Checkpoint) (position, error) {
	var p position
	if len(cp) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(cp, &p); err != nil || p.File == "" || p.Offset < 0 {
		return p, fmt.Errorf("checkpoint is not a file source position")
	}
	return p, nil
}

func (p position) encode() plugins.Checkpoint {
	b := make([]byte, 0, len(p.File)+40)
	b = append(b, `{"file":`...)
	b = plugins.AppendJSONString(b, p.File)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, p.Offset, 10)
	return append(b, '}')
}

// Run reads from the checkpoint on; see the package documentation.
func (s *source) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	pos, err := decodeCheckpoint(from)
	if err != nil {
		return plugins.Permanent(err)
	}
	r := &reader{s: s, emit: emit, pos: pos}
	warned := false
	for {
		files, err := s.match()
		if err != nil {
			return err
		}
		if len(files) == 0 && !warned {
			s.set.Logger.Warn("no file matches path", "path", s.cfg.Path)
			warned = true
		}
		if err := r.readAll(ctx, files); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if s.set.Once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.cfg.PollInterval):
		}
	}
}

// match returns the regular files the glob names, as sorted absolute paths.
func (s *source) match() ([]string, error) {
	names, err := filepath.Glob(s.cfg.Path)
	if err != nil {
		return nil, plugins.Permanent(fmt.Errorf("path %q: %w", s.cfg.Path, err))
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		abs, err := filepath.Abs(n)
		if err != nil {
			return nil, fmt.Errorf("path %s: %w", n, err)
		}
		if fi, err := os.Stat(abs); err == nil && fi.Mode().IsRegular() {
			out = append(out, abs)
		}
	}
	slices.Sort(out)
	return out, nil
}

// reader carries the position and the batch being filled across files.
// It cuts the lines; parsing them is the pipe's work (see pipe.go).
type reader struct {
	s      *source
	emit   plugins.Emit
	pipe   *parsePipe
	pos    position
	batch  *rawBatch
	long   []byte
	br     *bufio.Reader
	recvAt time.Time
}

// readAll reads every file at or after the position, then emits what is
// left of the batch.
func (r *reader) readAll(ctx context.Context, files []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.pipe = newParsePipe(ctx, cancel, r.s, r.emit)
	err := func() error {
		for i, f := range files {
			if f < r.pos.File {
				continue
			}
			last := i == len(files)-1
			if err := r.readFile(ctx, f, last && !r.s.set.Once); err != nil {
				return err
			}
		}
		return r.flush(ctx)
	}()
	// Every batch handed to the pipe is emitted (or the emit failed)
	// before readAll returns: in once mode, returning means caught up.
	if perr := r.pipe.close(); perr != nil {
		return perr
	}
	return err
}

// readFile reads path from the position (or its start) to its end. When
// holdTail is set, a last line without a newline is left for later.
func (r *reader) readFile(ctx context.Context, path string, holdTail bool) error {
	var offset int64
	if path == r.pos.File {
		offset = r.pos.Offset
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // gone since the glob matched
		}
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if offset > 0 {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("stat %s: %w", path, err)
		}
		if fi.Size() < offset {
			r.s.set.Logger.Warn("file is shorter than its checkpoint; reading it again from the start",
				"file", path, "size", fi.Size(), "checkpoint_offset", offset)
			offset = 0
		} else if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return fmt.Errorf("seek %s: %w", path, err)
		}
	}
	if r.pos.File != path {
		r.pos = position{File: path, Offset: offset}
	} else {
		r.pos.Offset = offset
	}
	if r.br == nil {
		r.br = bufio.NewReaderSize(f, 256<<10)
	} else {
		r.br.Reset(f)
	}
	r.recvAt = r.s.set.Now()
	for {
		line, n, complete, err := r.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s at offset %d: %w", path, r.pos.Offset, err)
		}
		if n == 0 {
			break
		}
		if !complete && holdTail {
			break // a partial last line: wait for its newline
		}
		start := r.pos.Offset
		r.pos.Offset += int64(n)
		if line != nil && !isBlank(line) {
			r.add(path, start, line)
		}
		if r.batch != nil && len(r.batch.lines) >= r.s.cfg.BatchSize {
			if err := r.flush(ctx); err != nil {
				return err
			}
			r.recvAt = r.s.set.Now()
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if !holdTail {
		r.s.files.Inc()
	}
	r.s.set.Logger.Debug("file read", "file", path, "from_offset", offset, "to_offset", r.pos.Offset)
	return nil
}

// readLine returns the next line without its newline (nil when it is too
// long and was skipped), the bytes it took in the file, and whether it
// ended with a newline. It returns io.EOF with the last, unterminated line.
func (r *reader) readLine() (line []byte, n int, complete bool, err error) {
	max := r.s.cfg.MaxLineBytes
	r.long = r.long[:0]
	tooLong := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		n += len(chunk)
		if errors.Is(err, bufio.ErrBufferFull) {
			if !tooLong {
				if len(r.long)+len(chunk) > max {
					tooLong, r.long = true, r.long[:0]
				} else {
					r.long = append(r.long, chunk...)
				}
			}
			continue
		}
		complete = err == nil
		if len(r.long) > 0 && !tooLong {
			r.long = append(r.long, chunk...)
			chunk = r.long
		}
		if !tooLong && len(chunk) > max+1 {
			tooLong = true
		}
		if tooLong {
			if n > 0 {
				r.s.tooLong.Inc()
				r.s.set.Logger.Warn("line longer than max_line_bytes skipped", "file", r.pos.File,
					"offset", r.pos.Offset, "bytes", n, "max_line_bytes", max)
			}
			return nil, n, complete, err
		}
		if complete {
			chunk = chunk[:len(chunk)-1]
		}
		if len(chunk) > 0 && chunk[len(chunk)-1] == '\r' {
			chunk = chunk[:len(chunk)-1]
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, false, err
		}
		return chunk, n, complete, err
	}
}

// add copies one line into the batch.
func (r *reader) add(path string, offset int64, line []byte) {
	if r.batch == nil {
		m := r.s.getMem()
		r.batch = &rawBatch{recvAt: r.recvAt, mem: m, data: m.data[:0], lines: m.lines[:0]}
	}
	b := r.batch
	start := len(b.data)
	b.data = append(b.data, line...)
	b.lines = append(b.lines, lineRef{start: start, end: len(b.data), path: path, offset: offset})
}

// flush hands the batch to the pipe with the current position as its
// checkpoint.
func (r *reader) flush(ctx context.Context) error {
	if r.batch == nil || len(r.batch.lines) == 0 {
		return nil
	}
	b := r.batch
	b.cp = r.pos.encode()
	r.batch = nil
	return r.pipe.submit(ctx, b)
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// ItemID is the stable id of a raw API item: NCP historyId, NHN
// eventLogUuid, or, for items without one (NHN v1.0), plugins.Fingerprint
// of the item — the SHA-256 of its canonical JSON, which the API sources and
// the ecs transform compute the same way.
func ItemID(dataset string, item *plugins.Object) string {
	key := "historyId"
	if dataset == DatasetNHN {
		key = "eventLogUuid"
	}
	switch v, _ := item.GetKey(key); t := v.(type) {
	case string:
		if t != "" {
			return t
		}
	case plugins.Number:
		return string(t)
	}
	return plugins.Fingerprint(item)
}

// itemTime reads the item's eventTime: epoch milliseconds (NCP) or
// ISO-8601 with an offset (NHN); zero when unreadable.
func itemTime(dataset string, item *plugins.Object) time.Time {
	v, _ := item.GetKey("eventTime")
	switch t := v.(type) {
	case plugins.Number:
		if ms, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return time.UnixMilli(ms).UTC()
		}
	case string:
		if dataset == DatasetNCP {
			if ms, err := strconv.ParseInt(t, 10, 64); err == nil {
				return time.UnixMilli(ms).UTC()
			}
		}
		for _, layout := range []string{"2006-01-02T15:04:05.999999999-0700", time.RFC3339Nano} {
			if ts, err := time.Parse(layout, t); err == nil {
				return ts.UTC()
			}
		}
	}
	return time.Time{}
}
