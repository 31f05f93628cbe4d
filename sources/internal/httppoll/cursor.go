package httppoll

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// cursorVersion is written into every checkpoint; a checkpoint of another
// version is refused rather than misread.
const cursorVersion = 1

// Cursor is a Poller's position: what a checkpoint says.
//
// Every event with a time up to End has been emitted, and Seen holds the ids
// (with their event time in Unix milliseconds) of the emitted events whose
// time is at or after End − overlap, the part the next poll reads again.
type Cursor struct {
	End  time.Time
	Seen map[string]int64
}

type cursorJSON struct {
	V    int         `json:"v"`
	End  int64       `json:"end"`
	Seen []seenGroup `json:"seen,omitempty"`
}

// seenGroup lists the ids sharing one event time: compact, since audit
// events often come in bursts with equal timestamps.
type seenGroup struct {
	T   int64    `json:"t"`
	IDs []string `json:"ids"`
}

// IsZero reports whether the cursor is the start (no checkpoint).
func (c Cursor) IsZero() bool { return c.End.IsZero() }

// EncodeCursor returns the checkpoint of c: compact JSON, deterministic.
func EncodeCursor(c Cursor) plugins.Checkpoint {
	out := cursorJSON{V: cursorVersion, End: c.End.UnixMilli()}
	if len(c.Seen) > 0 {
		byT := map[int64][]string{}
		for id, t := range c.Seen {
			byT[t] = append(byT[t], id)
		}
		out.Seen = make([]seenGroup, 0, len(byT))
		for t, ids := range byT {
			sort.Strings(ids)
			out.Seen = append(out.Seen, seenGroup{T: t, IDs: ids})
		}
		sort.Slice(out.Seen, func(i, j int) bool { return out.Seen[i].T < out.Seen[j].T })
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err) // strings and integers only: cannot fail
	}
	return b
}

// DecodeCursor parses a checkpoint written by EncodeCursor; an empty one is
// the zero Cursor.
func DecodeCursor(cp plugins.Checkpoint) (Cursor, error) {
	if len(cp) == 0 {
		return Cursor{}, nil
	}
	var in cursorJSON
	if err := json.Unmarshal(cp, &in); err != nil {
		return Cursor{}, fmt.Errorf("checkpoint is not a poller cursor: %w", err)
	}
	if in.V != cursorVersion {
		return Cursor{}, fmt.Errorf("checkpoint has version %d, want %d", in.V, cursorVersion)
	}
	c := Cursor{Seen: map[string]int64{}}
	if in.End > 0 {
		c.End = time.UnixMilli(in.End).UTC()
	}
	for _, g := range in.Seen {
		for _, id := range g.IDs {
			c.Seen[id] = g.T
		}
	}
	return c, nil
}

// prune drops the ids older than since (Unix ms).
func (c *Cursor) prune(since int64) {
	for id, t := range c.Seen {
		if t < since {
			delete(c.Seen, id)
		}
	}
}
