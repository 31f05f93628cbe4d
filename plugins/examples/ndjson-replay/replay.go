package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

func newFactory() plugins.Factory {
	return plugins.NewSourceFactory("ndjson_replay", "replays NDJSON files, one event per line, resuming where it stopped",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Source, error) {
			return &source{cfg: cfg, set: set}, nil
		})
}

// position is the checkpoint: every file sorting before File is done, and
// File is read up to Offset bytes.
type position struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
}

func decodePosition(cp plugins.Checkpoint) (position, error) {
	var p position
	if len(cp) == 0 {
		return p, nil
	}
	dec := json.NewDecoder(bytes.NewReader(cp))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("checkpoint is not an ndjson_replay position: %w", err)
	}
	if p.Offset < 0 || (p.File == "" && p.Offset != 0) {
		return p, fmt.Errorf("checkpoint position %+v is invalid", p)
	}
	return p, nil
}

func (p position) encode() plugins.Checkpoint {
	b, _ := json.Marshal(p)
	return b
}

type source struct {
	cfg *Config
	set plugins.Settings
}

var _ plugins.Source = (*source)(nil)

func (s *source) Start(context.Context) error { return nil }
func (s *source) Close(context.Context) error { return nil }

// files returns the files the globs match, absolute, sorted, once each.
func (s *source) files() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, pattern := range s.cfg.Paths {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, plugins.Permanent(fmt.Errorf("paths: %w", err))
		}
		for _, m := range matches {
			abs, err := filepath.Abs(m)
			if err != nil {
				return nil, err
			}
			if st, err := os.Stat(abs); err == nil && st.Mode().IsRegular() && !seen[abs] {
				seen[abs] = true
				out = append(out, abs)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Run replays from the checkpoint. In once mode it returns when every file
// is read to its end; otherwise it keeps looking for new lines and files.
func (s *source) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	pos, err := decodePosition(from)
	if err != nil {
		return plugins.Permanent(err)
	}
	for {
		files, err := s.files()
		if err != nil {
			return err
		}
		for _, f := range files {
			if f < pos.File {
				continue
			}
			if f > pos.File {
				pos = position{File: f}
			}
			if pos, err = s.readFile(ctx, pos, emit); err != nil || ctx.Err() != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		if s.set.Once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.cfg.Interval):
		}
	}
}

// readFile emits the complete lines of pos.File after pos.Offset (in once
// mode a last line without a newline too) and returns the new position.
func (s *source) readFile(ctx context.Context, pos position, emit plugins.Emit) (position, error) {
	f, err := os.Open(pos.File)
	if err != nil {
		return pos, fmt.Errorf("replay %s: %w", pos.File, err)
	}
	defer f.Close()
	if _, err := f.Seek(pos.Offset, io.SeekStart); err != nil {
		return pos, fmt.Errorf("replay %s: %w", pos.File, err)
	}
	r := bufio.NewReaderSize(f, 256<<10)
	batch := make([]*plugins.Event, 0, s.cfg.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := emit(ctx, plugins.Batch{Events: batch, Checkpoint: pos.encode()})
		batch = make([]*plugins.Event, 0, s.cfg.BatchSize)
		return err
	}
	now := s.set.Now
	if now == nil {
		now = time.Now
	}
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) && (!s.set.Once || len(line) == 0) {
			// A partial last line is read again once it is complete.
			return pos, flush()
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return pos, fmt.Errorf("replay %s: %w", pos.File, err)
		}
		start := pos.Offset
		pos.Offset += int64(len(line))
		if ev := s.event(bytes.TrimSpace(line), pos.File, start, now()); ev != nil {
			batch = append(batch, ev)
		}
		if len(batch) >= s.cfg.BatchSize {
			if err := flush(); err != nil {
				return pos, err
			}
		}
		if errors.Is(err, io.EOF) {
			return pos, flush()
		}
	}
}

// event parses one line; a line that is not a JSON object is logged and
// skipped (it stays in the file for whoever wants to look).
func (s *source) event(line []byte, file string, offset int64, now time.Time) *plugins.Event {
	if len(line) == 0 {
		return nil
	}
	o, err := plugins.ParseObject(line)
	if err != nil {
		s.set.Logger.Warn("skipping a line that is not a JSON object", "file", file, "offset", offset, "error", err)
		return nil
	}
	ev := &plugins.Event{Fields: o, Meta: plugins.Meta{Source: s.set.ID, Dataset: s.cfg.Dataset, Received: now}}
	if ev.Meta.Dataset == "" {
		ev.Meta.Dataset, _ = o.GetString("event.dataset")
	}
	if v, ok := o.Get(s.cfg.IDField); ok {
		switch t := v.(type) {
		case string:
			ev.Meta.ID = t
		case plugins.Number:
			ev.Meta.ID = string(t)
		}
	}
	if s.cfg.TimeField != "" {
		if v, ok := o.GetString(s.cfg.TimeField); ok {
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				ev.Meta.Time = t.UTC()
			}
		}
	}
	return ev
}
