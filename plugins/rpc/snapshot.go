package rpc

import (
	"unsafe"

	"github.com/auditforwarder/forwarder/plugins"
)

// A snapshot is the structure of a document taken before the transform
// runs: its values, depth first, with their keys. Strings are immutable
// and shared, so taking one copies no text, and comparing a returned
// document against it is a walk over both, without encoding either: this
// is how the plugin finds what a transform changed in place.
type snapshot []snapEntry

type snapEntry struct {
	key  string
	val  any // a scalar; nil for containers
	n    int32
	size int32 // entries in this value's subtree, itself included
	kind uint8
}

const (
	snapScalar = iota
	snapObject // n members follow
	snapArray  // n elements follow
	snapOther  // a value of another type: never equal
)

func appendSnap(s []snapEntry, key string, v any) []snapEntry {
	at := len(s)
	switch t := v.(type) {
	case *plugins.Object:
		if t == nil {
			s = append(s, snapEntry{key: key, kind: snapOther})
			break
		}
		s = append(s, snapEntry{key: key, kind: snapObject, n: int32(t.Len())})
		for i := 0; i < t.Len(); i++ {
			s = appendSnap(s, t.Key(i), t.Value(i))
		}
	case []any:
		s = append(s, snapEntry{key: key, kind: snapArray, n: int32(len(t))})
		for _, e := range t {
			s = appendSnap(s, "", e)
		}
	case nil, bool, string, plugins.Number, int, int64, float64:
		s = append(s, snapEntry{key: key, kind: snapScalar, val: v})
	default:
		s = append(s, snapEntry{key: key, kind: snapOther})
	}
	s[at].size = int32(len(s) - at)
	return s
}

// takeSnapshots snapshots the documents of events, in parallel.
func takeSnapshots(events []*plugins.Event) []snapshot {
	out := make([]snapshot, len(events))
	eachPart((len(events)+partEvents-1)/partEvents, func(r int) {
		lo, hi := r*partEvents, min((r+1)*partEvents, len(events))
		slab := make([]snapEntry, 0, 16*(hi-lo))
		for i := lo; i < hi; i++ {
			if events[i].Fields == nil {
				continue
			}
			start := len(slab)
			// Slices taken before a later append grew slab keep pointing
			// at the old array, which is never written again.
			slab = appendSnap(slab, "", events[i].Fields)
			out[i] = slab[start:len(slab):len(slab)]
		}
	})
	return out
}

// equal reports whether v equals the value at pos. It is exact for the
// values of a parsed document; a value of another type is never equal
// (the caller then sends it, which is harmless).
func (s snapshot) equal(pos int, v any) bool {
	e := &s[pos]
	switch t := v.(type) {
	case *plugins.Object:
		if e.kind != snapObject || t == nil || int(e.n) != t.Len() {
			return false
		}
		p := pos + 1
		for i := 0; i < t.Len(); i++ {
			if s[p].key != t.Key(i) || !s.equal(p, t.Value(i)) {
				return false
			}
			p += int(s[p].size)
		}
		return true
	case []any:
		if e.kind != snapArray || int(e.n) != len(t) {
			return false
		}
		p := pos + 1
		for _, x := range t {
			if !s.equal(p, x) {
				return false
			}
			p += int(s[p].size)
		}
		return true
	case string:
		// Most strings are the very ones parsed: same bytes, no compare.
		es, ok := e.val.(string)
		return ok && e.kind == snapScalar && len(es) == len(t) &&
			(unsafe.StringData(es) == unsafe.StringData(t) || es == t)
	case nil, bool, plugins.Number, int, int64, float64:
		// Both sides hold comparable types only.
		return e.kind == snapScalar && e.val == v
	}
	return false
}
