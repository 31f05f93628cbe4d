package rpc

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/auditforwarder/forwarder/plugins"
)

// ---- kinds ----

func encodeKind(k plugins.Kind) Kind {
	switch k {
	case plugins.KindSource:
		return Kind_KIND_SOURCE
	case plugins.KindTransform:
		return Kind_KIND_TRANSFORM
	case plugins.KindOutput:
		return Kind_KIND_OUTPUT
	}
	return Kind_KIND_UNSPECIFIED
}

func decodeKind(k Kind) plugins.Kind {
	switch k {
	case Kind_KIND_SOURCE:
		return plugins.KindSource
	case Kind_KIND_TRANSFORM:
		return plugins.KindTransform
	case Kind_KIND_OUTPUT:
		return plugins.KindOutput
	}
	return 0
}

// ---- errors ----

// EncodeError turns a domain error into its wire form, keeping what the
// host acts on: Permanent-ness, per-event failures of a *plugins.BatchError
// and the key paths of *plugins.FieldError values.
func EncodeError(err error) *Error {
	if err == nil {
		return nil
	}
	e := &Error{Message: validUTF8(err.Error()), Permanent: plugins.IsPermanent(err)}
	var be *plugins.BatchError
	if errors.As(err, &be) {
		for _, f := range be.Failures {
			if f.Index < 0 {
				continue
			}
			msg := "unknown error"
			if f.Err != nil {
				msg = validUTF8(f.Err.Error())
			}
			e.Failures = append(e.Failures, &EventFailure{Index: uint32(f.Index), Message: msg, Permanent: plugins.IsPermanent(f.Err)})
		}
		return e
	}
	var fields []*FieldError
	hasField := false
	for _, one := range flatten(err) {
		var fe *plugins.FieldError
		if errors.As(one, &fe) {
			hasField = true
			fields = append(fields, &FieldError{Path: validUTF8(fe.Path), Message: validUTF8(fe.Msg)})
			continue
		}
		fields = append(fields, &FieldError{Message: validUTF8(one.Error())})
	}
	if hasField {
		e.FieldErrors = fields
	}
	return e
}

// DecodeError rebuilds a domain error from its wire form: a
// *plugins.BatchError, joined *plugins.FieldError values, or a plain error,
// each wrapped with plugins.Permanent when the plugin marked it so.
func DecodeError(e *Error) error {
	if e == nil {
		return nil
	}
	if len(e.Failures) > 0 {
		be := &plugins.BatchError{}
		for _, f := range e.Failures {
			var fe error = remoteError(f.Message)
			if f.Permanent {
				fe = plugins.Permanent(fe)
			}
			be.Add(int(f.Index), fe)
		}
		return be
	}
	var err error
	if len(e.FieldErrors) > 0 {
		errs := make([]error, len(e.FieldErrors))
		for i, f := range e.FieldErrors {
			errs[i] = &plugins.FieldError{Path: f.Path, Msg: f.Message}
		}
		err = errors.Join(errs...)
	} else {
		err = remoteError(e.Message)
	}
	if e.Permanent {
		err = plugins.Permanent(err)
	}
	return err
}

// remoteError is an error message that came from the plugin.
type remoteError string

func (r remoteError) Error() string { return string(r) }

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// ---- times and meta ----

var zeroUnix = time.Time{}.Unix()

func encodeTime(t time.Time) (int64, int32) { return t.Unix(), int32(t.Nanosecond()) }

func decodeTime(s int64, n int32) time.Time {
	if s == zeroUnix && n == 0 {
		return time.Time{}
	}
	return time.Unix(s, int64(n)).UTC()
}

// validUTF8 makes s safe for a protobuf string field, which must be UTF-8.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func fillMeta(dst *Meta, m *plugins.Meta) {
	dst.Source, dst.Dataset, dst.Id = validUTF8(m.Source), validUTF8(m.Dataset), validUTF8(m.ID)
	dst.TimeSeconds, dst.TimeNanos = encodeTime(m.Time)
	dst.ReceivedSeconds, dst.ReceivedNanos = encodeTime(m.Received)
}

func decodeMeta(m *Meta) plugins.Meta {
	if m == nil {
		return plugins.Meta{}
	}
	return plugins.Meta{
		Source: m.Source, Dataset: m.Dataset, ID: m.Id,
		Time:     decodeTime(m.TimeSeconds, m.TimeNanos),
		Received: decodeTime(m.ReceivedSeconds, m.ReceivedNanos),
	}
}

func sameMeta(a, b *plugins.Meta) bool {
	return a.Source == b.Source && a.Dataset == b.Dataset && a.ID == b.ID &&
		a.Time.Equal(b.Time) && a.Received.Equal(b.Received)
}

// ---- events ----

// parallelMin is the number of events from which encoding and decoding a
// batch is spread over the CPUs: a plugin call is synchronous, so while one
// side works the other side's cores would otherwise idle.
const parallelMin = 128

// parallel runs fn over [0, n) split into ranges, concurrently when n is
// large enough.
func parallel(n int, fn func(lo, hi int)) {
	p := min(runtime.GOMAXPROCS(0), n/(parallelMin/2))
	if p <= 1 {
		fn(0, n)
		return
	}
	per := (n + p - 1) / p
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += per {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, min(lo+per, n))
	}
	wg.Wait()
}

var bufPool sync.Pool

// buffers are pooled byte buffers that encoded messages point into; they
// go back to the pool once the message is sent.
type buffers struct {
	mu   sync.Mutex
	list []*[]byte
}

func (b *buffers) get() *[]byte {
	bp, ok := bufPool.Get().(*[]byte)
	if !ok {
		s := make([]byte, 0, 64<<10)
		bp = &s
	}
	*bp = (*bp)[:0]
	b.mu.Lock()
	b.list = append(b.list, bp)
	b.mu.Unlock()
	return bp
}

// abandon forgets the buffers instead of pooling them: after a failed call,
// gRPC may still be writing from them (wireCodec sends them in place).
func (b *buffers) abandon() { b.list = nil }

func (b *buffers) release() {
	for _, bp := range b.list {
		if cap(*bp) <= 4*ChunkBytes {
			bufPool.Put(bp)
		}
	}
	b.list = nil
}

// encodeEvents encodes events for a request. The documents go into
// buffers from bufs, which must outlive the sending of the messages.
func encodeEvents(events []*plugins.Event, bufs *buffers) []*Event {
	out := make([]*Event, len(events))
	msgs := make([]Event, len(events))
	metas := make([]Meta, len(events))
	parallel(len(events), func(lo, hi int) {
		bp := bufs.get()
		buf := *bp
		for i := lo; i < hi; i++ {
			ev := events[i]
			start := len(buf)
			if ev.Fields != nil {
				buf = ev.Fields.AppendJSON(buf)
			} else {
				buf = append(buf, '{', '}')
			}
			fillMeta(&metas[i], &ev.Meta)
			msgs[i].Meta = &metas[i]
			out[i] = &msgs[i]
			// A slice taken before a later append grew buf keeps pointing
			// at the old array, whose bytes never change: it stays valid.
			out[i].Fields = buf[start:len(buf):len(buf)]
		}
		*bp = buf
	})
	return out
}

// decodeEvent parses one event.
func decodeEvent(pe *Event) (*plugins.Event, error) {
	ev := &plugins.Event{Meta: decodeMeta(pe.GetMeta())}
	if len(pe.GetFields()) == 0 {
		ev.Fields = plugins.NewObject(0)
		return ev, nil
	}
	o, err := plugins.ParseObject(pe.Fields)
	if err != nil {
		return nil, fmt.Errorf("event document: %w", err)
	}
	ev.Fields = o
	return ev, nil
}

func decodeEvents(pes []*Event) ([]*plugins.Event, error) {
	out := make([]*plugins.Event, len(pes))
	var mu sync.Mutex
	var first error
	firstAt := len(pes)
	parallel(len(pes), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ev, err := decodeEvent(pes[i])
			if err != nil {
				mu.Lock()
				if i < firstAt {
					first, firstAt = fmt.Errorf("event %d: %w", i, err), i
				}
				mu.Unlock()
				return
			}
			out[i] = ev
		}
	})
	if first != nil {
		return nil, first
	}
	return out, nil
}

// ---- transform results ----

// patch is one change of a top-level key; val (JSON) points into the
// differ's buffer.
type patch struct {
	key string
	del bool
	val []byte
}

// differ computes patches; its storage is reused from one event to the
// next.
type differ struct {
	keys    []string
	pos     []int
	matched []bool
	index   map[string]int
	// buf holds the values of patches; it only grows, so the values of
	// earlier patches stay valid until the caller truncates it.
	buf     []byte
	patches []patch
}

// diff appends to d.patches the changes turning the document whose
// snapshot is in (taken before the transform ran) into out. Keys out
// keeps in their relative order are set in place when their value
// changed; keys out added, or moved after others, are (deleted and)
// appended, so applyPatches rebuilds out's exact key order. Values are
// encoded into d.buf.
//
// With utf8Keys, ok is false when a key is not valid UTF-8 (a protobuf
// string cannot carry it): the whole document is then sent, as JSON, which
// replaces the invalid bytes.
func (d *differ) diff(in snapshot, out *plugins.Object, utf8Keys bool) (ok bool) {
	d.keys, d.pos = d.keys[:0], d.pos[:0]
	for p, i := 1, 0; i < int(in[0].n); i++ {
		d.keys = append(d.keys, in[p].key)
		d.pos = append(d.pos, p)
		p += int(in[p].size)
	}
	keys := d.keys
	if cap(d.matched) < len(keys) {
		d.matched = make([]bool, len(keys))
	}
	matched := d.matched[:len(keys)]
	clear(matched)
	last, appending := -1, false
	var index map[string]int
	if len(keys) > 16 {
		if d.index == nil {
			d.index = make(map[string]int, len(keys))
		}
		index = d.index
		clear(index)
		for j, k := range keys {
			index[k] = j
		}
	}
	for p := 0; p < out.Len(); p++ {
		key := out.Key(p)
		if utf8Keys && !utf8.ValidString(key) {
			return false
		}
		j := -1
		if n := last + 1; n < len(keys) && keys[n] == key {
			// Most keys are where they were: after the last one matched.
			// (A snapshot's keys are distinct: it is of a decoded
			// document.)
			j = n
		} else if index != nil {
			if v, ok := index[key]; ok {
				j = v
			}
		} else {
			for q, k := range keys {
				if k == key {
					j = q
					break
				}
			}
		}
		inOrder := j >= 0 && !matched[j] && !appending && j > last
		if inOrder && in.equal(d.pos[j], out.Value(p)) {
			last, matched[j] = j, true
			continue
		}
		start := len(d.buf)
		d.buf = plugins.AppendJSONValue(d.buf, out.Value(p))
		val := d.buf[start:len(d.buf):len(d.buf)]
		switch {
		case inOrder:
			// Changed in place.
			last, matched[j] = j, true
			d.patches = append(d.patches, patch{key: key, val: val})
		case j < 0:
			// A new key: appended.
			appending = true
			d.patches = append(d.patches, patch{key: key, val: val})
		case matched[j]:
			// A duplicate key in out: send it like the object holds it.
			d.patches = append(d.patches, patch{key: key, val: val})
		default:
			// Moved after keys that follow it in the input: delete, append.
			matched[j], appending = true, true
			d.patches = append(d.patches, patch{key: key, del: true}, patch{key: key, val: val})
		}
	}
	for j, ok := range matched {
		if !ok {
			d.patches = append(d.patches, patch{key: keys[j], del: true})
		}
	}
	return true
}

// applyPatches applies a plugin's patches to a document.
func applyPatches(o *plugins.Object, patches []*FieldPatch) error {
	// Deletions first, then sets: a set of a key the document still has
	// keeps its position, any other set appends.
	for _, p := range patches {
		if p.Delete {
			o.DeleteKey(p.Key)
		}
	}
	for _, p := range patches {
		if p.Delete {
			continue
		}
		v, err := plugins.ParseValue(p.Value)
		if err != nil {
			return fmt.Errorf("patch of key %q: %w", p.Key, err)
		}
		o.SetKey(p.Key, v)
	}
	return nil
}
