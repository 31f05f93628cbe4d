package rpc

import (
	"sync"
	"unsafe"

	"github.com/auditforwarder/forwarder/plugins"
)

// A snapshot is the structure of a document taken before the transform
// runs: its values, depth first, with their keys. Strings are immutable
// and shared, so taking one copies no text, and comparing a returned
// document against it is a walk over both, without encoding either: this
// is how the plugin finds what a transform changed in place.
type snapshot []snapEntry

// snapEntry is one value. val is the value itself: the snapshot keeps it
// alive, so an identical interface value (same type and data word) found
// later is the very value parsed, never a new one at a reused address.
type snapEntry struct {
	key string
	val any
	// n is a container's member or element count (its entries follow);
	// size is the entries in this value's subtree, itself included.
	n, size int32
}

func appendSnap(s []snapEntry, key string, v any) []snapEntry {
	at := len(s)
	switch t := v.(type) {
	case *plugins.Object:
		if t == nil {
			break
		}
		s = append(s, snapEntry{key: key, val: v, n: int32(t.Len())})
		for i := 0; i < t.Len(); i++ {
			s = appendSnap(s, t.Key(i), t.Value(i))
		}
		s[at].size = int32(len(s) - at)
		return s
	case []any:
		s = append(s, snapEntry{key: key, val: v, n: int32(len(t))})
		for _, e := range t {
			s = appendSnap(s, "", e)
		}
		s[at].size = int32(len(s) - at)
		return s
	}
	// A scalar, or a value of another type (never equal, see equal).
	return append(s, snapEntry{key: key, val: v, size: 1})
}

// snapSlabs pools the snapshots' storage: a batch's snapshots die with
// the Process call that took them, and pooling them spares the plugin
// allocating (and the collector scanning) a copy of every batch's
// structure.
var snapSlabs sync.Pool

// takeSnapshots snapshots the documents of events, in parallel. release
// gives the storage back: the snapshots must not be used after it.
func takeSnapshots(events []*plugins.Event) (snaps []snapshot, release func()) {
	out := make([]snapshot, len(events))
	slabs := make([]*[]snapEntry, (len(events)+partEvents-1)/partEvents)
	eachPart(len(slabs), func(r int) {
		lo, hi := r*partEvents, min((r+1)*partEvents, len(events))
		slabs[r] = snapRange(events[lo:hi], out[lo:hi])
	})
	return out, func() { releaseSnaps(slabs) }
}

// snapRange snapshots the documents of events into out, returning the
// storage to give back with releaseSnaps.
func snapRange(events []*plugins.Event, out []snapshot) *[]snapEntry {
	sp, _ := snapSlabs.Get().(*[]snapEntry)
	if sp == nil {
		s := make([]snapEntry, 0, 16*partEvents)
		sp = &s
	}
	slab := (*sp)[:0]
	for i, ev := range events {
		if ev.Fields == nil {
			continue
		}
		start := len(slab)
		// Slices taken before a later append grew slab keep pointing at
		// the old array, which is never written again.
		slab = appendSnap(slab, "", ev.Fields)
		out[i] = slab[start:len(slab):len(slab)]
	}
	*sp = slab
	return sp
}

// releaseSnaps gives back the storage of snapshots (nil: none).
func releaseSnaps(slabs []*[]snapEntry) {
	for _, sp := range slabs {
		if sp == nil {
			continue
		}
		// Drop the references to the documents before pooling.
		clear(*sp)
		if cap(*sp) <= 64*partEvents {
			snapSlabs.Put(sp)
		}
	}
}

// equal reports whether v equals the value at pos. It is exact for the
// values of a parsed document; a value of another type is never equal
// (the caller then sends it, which is harmless).
func (s snapshot) equal(pos int, v any) bool {
	e := &s[pos]
	switch t := v.(type) {
	case *plugins.Object:
		if o, ok := e.val.(*plugins.Object); !ok || o == nil || t == nil || int(e.n) != t.Len() {
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
		if _, ok := e.val.([]any); !ok || int(e.n) != len(t) {
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
		return ok && len(es) == len(t) &&
			(unsafe.StringData(es) == unsafe.StringData(t) || es == t)
	case nil, bool, plugins.Number, int, int64, float64:
		// v's type is comparable, so == cannot panic; another type in the
		// snapshot compares unequal.
		return e.val == v
	}
	return false
}
