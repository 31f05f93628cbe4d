package main

import (
	"context"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// unknownTag is added to tags when on_missing is tag.
const unknownTag = "asset_owner_unknown"

func newFactory() plugins.Factory {
	return plugins.NewTransformFactory("asset_owner", "enriches events with their owner from a CSV asset table",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Transform, error) {
			t, err := loadTable(cfg.Table, cfg.KeyColumn)
			if err != nil {
				return nil, err
			}
			set.Logger.Info("asset table loaded", "rows", len(t.rows), "columns", t.columns)
			return &transform{cfg: cfg, table: t}, nil
		})
}

// table maps a key to the values of the other columns.
type table struct {
	columns []string
	rows    map[string][]string
}

func loadTable(path, keyColumn string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("asset table: %w", err)
	}
	defer f.Close()
	return parseTable(f, path, keyColumn)
}

func parseTable(r io.Reader, name, keyColumn string) (*table, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("asset table %s: reading the header: %w", name, err)
	}
	key := 0
	if keyColumn != "" {
		key = -1
		for i, h := range header {
			if strings.TrimSpace(h) == keyColumn {
				key = i
			}
		}
		if key < 0 {
			return nil, fmt.Errorf("asset table %s: no column %q in the header %v", name, keyColumn, header)
		}
	}
	if len(header) < 2 {
		return nil, fmt.Errorf("asset table %s: needs a key column and at least one more", name)
	}
	t := &table{rows: map[string][]string{}}
	for i, h := range header {
		if i == key {
			continue
		}
		h = strings.TrimSpace(h)
		if !plugins.ValidTypeName(h) {
			return nil, fmt.Errorf("asset table %s: column %q must be a lower snake_case field name", name, h)
		}
		t.columns = append(t.columns, h)
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("asset table %s: %w", name, err)
		}
		k := strings.TrimSpace(rec[key])
		if _, dup := t.rows[k]; dup {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("asset table %s:%d: key %q appears twice", name, line, k)
		}
		vals := make([]string, 0, len(t.columns))
		for i, v := range rec {
			if i != key {
				vals = append(vals, v)
			}
		}
		t.rows[k] = vals
	}
	return t, nil
}

type transform struct {
	cfg   *Config
	table *table
}

// The table is read-only once loaded, so batches can be enriched on
// several cores at once: the forwarder then keeps several in flight.
var _ plugins.ParallelTransform = (*transform)(nil)

// Fork implements plugins.ParallelTransform: Process keeps no scratch state.
func (t *transform) Fork() plugins.ProcessFunc { return t.Process }

func (t *transform) Start(context.Context) error { return nil }
func (t *transform) Close(context.Context) error { return nil }

// Process adds the matching row's columns under the target object.
func (t *transform) Process(_ context.Context, events []*plugins.Event) ([]*plugins.Event, error) {
	for _, ev := range events {
		key, ok := lookupKey(ev.Fields, t.cfg.Match)
		row, found := t.table.rows[key]
		if !ok || !found {
			if t.cfg.OnMissing == "tag" {
				addTag(ev.Fields, unknownTag)
			}
			continue
		}
		for i, col := range t.table.columns {
			if row[i] != "" {
				ev.Fields.Set(t.cfg.Target+"."+col, row[i])
			}
		}
	}
	return events, nil
}

// lookupKey reads the match field as a string (numbers as written).
func lookupKey(o *plugins.Object, path string) (string, bool) {
	v, ok := o.Get(path)
	if !ok {
		return "", false
	}
	switch t := v.(type) {
	case string:
		return t, true
	case plugins.Number:
		return string(t), true
	}
	return fmt.Sprint(v), true
}

func addTag(o *plugins.Object, tag string) {
	v, _ := o.GetKey("tags")
	tags, _ := v.([]any)
	for _, t := range tags {
		if t == tag {
			return
		}
	}
	o.SetKey("tags", append(tags, tag))
}
