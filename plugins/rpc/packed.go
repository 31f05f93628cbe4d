package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/auditforwarder/forwarder/plugins"
)

// The packed encoding of event batches (FEATURE_PACKED_EVENTS; the format
// is described in plugin.proto). A batch is cut into parts of consecutive
// events, each part one bytes field: the two sides encode and decode parts
// in parallel, and an event costs one copy of its document instead of a
// protobuf message (and its allocations) of its own.

// FeaturePacked is the FEATURE_PACKED_EVENTS bit.
const FeaturePacked = uint32(Feature_FEATURE_PACKED_EVENTS)

// FeatureBinaryDocs is the FEATURE_BINARY_DOCS bit (see bindoc.go).
const FeatureBinaryDocs = uint32(Feature_FEATURE_BINARY_DOCS)

// supportedFeatures is what this package implements on either side.
const supportedFeatures = FeaturePacked | FeatureBinaryDocs

// binaryDocs reports whether the negotiated features have the documents
// of packed parts cross as binary documents.
func binaryDocs(features uint32) bool {
	return features&(FeaturePacked|FeatureBinaryDocs) == FeaturePacked|FeatureBinaryDocs
}

// partEvents and partBytes bound a part: small enough that parts spread
// over the CPUs of both sides, large enough that per-part costs vanish.
const (
	partEvents = 64
	partBytes  = 256 << 10
)

// maxEventBytes is the largest encoded event that fits in one message.
const maxEventBytes = MaxMessageBytes - 1024

// eachPart runs fn(i) for i in [0, n) on up to GOMAXPROCS goroutines,
// each taking the next index: parts differ in cost, so a shared counter
// balances them better than fixed ranges.
func eachPart(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			fn(i)
		}
	}
	wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}

// ---- events ----

// packedPart is one encoded part: the events lo..lo+len(idx)-1 of the
// caller's batch minus those too big to send, whose caller indexes idx
// lists.
type packedPart struct {
	data []byte
	idx  []int
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendMeta(b []byte, m *plugins.Meta) []byte {
	b = appendString(b, m.Source)
	b = appendString(b, m.Dataset)
	b = appendString(b, m.ID)
	s, n := encodeTime(m.Time)
	b = binary.AppendVarint(b, s)
	b = binary.AppendUvarint(b, uint64(uint32(n)))
	s, n = encodeTime(m.Received)
	b = binary.AppendVarint(b, s)
	return binary.AppendUvarint(b, uint64(uint32(n)))
}

// appendDoc appends a u32le length and the document: JSON, or a binary
// document when bin is set.
func appendDoc(b []byte, o *plugins.Object, bin bool) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	switch {
	case bin:
		b = appendBinDoc(b, o)
	case o != nil:
		b = o.AppendJSON(b)
	default:
		b = append(b, '{', '}')
	}
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// packEvents encodes events into parts, in parallel. Events whose
// encoding is above the message limit are left out and listed in tooBig.
// The parts point into buffers from bufs, which must outlive their
// sending.
func packEvents(events []*plugins.Event, bufs *buffers, bin bool) (parts []packedPart, tooBig []int) {
	maxPart := min(partBytes, max(chunkBytes/2, 1))
	// Ranges of whole parts' worth of events, encoded concurrently; a
	// range is cut further when its bytes exceed maxPart.
	nRanges := (len(events) + partEvents - 1) / partEvents
	ranged := make([][]packedPart, nRanges)
	big := make([][]int, nRanges)
	eachPart(nRanges, func(r int) {
		lo, hi := r*partEvents, min((r+1)*partEvents, len(events))
		bp := bufs.get()
		buf := *bp
		var cur packedPart
		start := len(buf)
		for i := lo; i < hi; i++ {
			ev := events[i]
			at := len(buf)
			buf = appendDoc(buf, ev.Fields, bin)
			buf = appendMeta(buf, &ev.Meta)
			n := len(buf) - at
			if n > maxEventBytes {
				buf = buf[:at]
				big[r] = append(big[r], i)
				continue
			}
			if len(cur.idx) > 0 && at-start+n > maxPart {
				// A slice taken before a later append grew buf keeps
				// pointing at the old array, whose bytes never change.
				cur.data = buf[start:at:at]
				ranged[r] = append(ranged[r], cur)
				cur, start = packedPart{}, at
			}
			cur.idx = append(cur.idx, i)
		}
		if len(cur.idx) > 0 {
			cur.data = buf[start:len(buf):len(buf)]
			ranged[r] = append(ranged[r], cur)
		}
		*bp = buf
	})
	for r := range ranged {
		parts = append(parts, ranged[r]...)
		tooBig = append(tooBig, big[r]...)
	}
	return parts, tooBig
}

// groupParts cuts parts into requests of at most chunkBytes each (at
// least one part per request).
func groupParts(parts []packedPart) [][]packedPart {
	var out [][]packedPart
	lo, size := 0, 0
	for i, p := range parts {
		if i > lo && size+len(p.data) > chunkBytes {
			out = append(out, parts[lo:i])
			lo, size = i, 0
		}
		size += len(p.data)
	}
	if lo < len(parts) {
		out = append(out, parts[lo:])
	}
	return out
}

func partData(parts []packedPart) [][]byte {
	out := make([][]byte, len(parts))
	for i, p := range parts {
		out[i] = p.data
	}
	return out
}

var errShortPart = errors.New("packed part is truncated")

// reader reads a packed part.
type reader struct {
	b   []byte
	err error
	// last source and dataset, shared by consecutive events.
	source, dataset string
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShortPart
	}
	r.b = nil
}

func (r *reader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) doc() []byte {
	if len(r.b) < 4 {
		r.fail()
		return nil
	}
	n := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return r.bytes(uint64(n))
}

// str reads a string, pointing into the part (see aliasString), reusing
// prev when equal (sources and datasets repeat from one event to the
// next).
func (r *reader) str(prev *string) string {
	b := r.bytes(r.uvarint())
	if prev != nil && string(b) == *prev {
		return *prev
	}
	s := aliasString(b)
	if prev != nil {
		*prev = s
	}
	return s
}

// skipMeta skips a meta.
func (r *reader) skipMeta() {
	for range 3 {
		r.bytes(r.uvarint())
	}
	r.varint()
	r.uvarint()
	r.varint()
	r.uvarint()
}

func (r *reader) meta(m *plugins.Meta) {
	m.Source = r.str(&r.source)
	m.Dataset = r.str(&r.dataset)
	m.ID = r.str(nil)
	s := r.varint()
	n := r.uvarint()
	m.Time = decodeTime(s, int32(uint32(n)))
	s = r.varint()
	n = r.uvarint()
	m.Received = decodeTime(s, int32(uint32(n)))
}

// partDecoder decodes the events of parts. The events of a part live and
// die together, so they and their documents share the decoder's
// allocations: a part costs a few allocations instead of several per
// event, and no copy of its bytes (the strings point into the part, which
// must never change while the events are read).
//
// The plugin's decoders come from a pool (getDecoders) and go back to it
// once the call is answered (putDecoders): its events are the
// component's only until Process or Write returns (package plugins,
// Memory), so the next request reuses their memory. The host's decoders
// are new ones, as its events live on in the pipeline.
type partDecoder struct {
	dp   docParser
	slab []plugins.Event
	out  []*plugins.Event
}

var decoderPool = sync.Pool{New: func() any { return new(partDecoder) }}

// getDecoders returns n pooled decoders.
func getDecoders(n int) []*partDecoder {
	ds := make([]*partDecoder, n)
	for i := range ds {
		ds[i] = decoderPool.Get().(*partDecoder)
		ds[i].dp.recycle = true
	}
	return ds
}

// newDecoders returns n decoders whose memory is never reused.
func newDecoders(n int) []*partDecoder {
	ds := make([]*partDecoder, n)
	for i := range ds {
		ds[i] = new(partDecoder)
	}
	return ds
}

// putDecoders clears the events of pooled decoders and pools them again.
// Call it only once nothing reads those events.
func putDecoders(ds []*partDecoder) {
	for _, d := range ds {
		clear(d.slab[:cap(d.slab)])
		clear(d.out[:cap(d.out)])
		d.slab, d.out = d.slab[:0], d.out[:0]
		d.dp.reuse()
		decoderPool.Put(d)
	}
}

// unpack decodes the events of one part; they are valid until the
// decoder is given back.
func (d *partDecoder) unpack(data []byte, bin bool) ([]*plugins.Event, error) {
	dp := &d.dp
	dp.bin, dp.prepared = bin, false
	// A first pass counts the events (and, for binary documents, checks
	// and counts their objects, which then come from one allocation).
	n := 0
	pre := reader{b: data}
	for ; len(pre.b) > 0 && pre.err == nil; n++ {
		doc := pre.doc()
		pre.skipMeta()
		if bin && len(doc) > 0 && pre.err == nil {
			if err := dp.prepare(doc); err != nil {
				return nil, fmt.Errorf("event %d: event document: %w", n, err)
			}
		}
	}
	if bin {
		dp.alloc()
		dp.prepared = true
	}
	// Appends within the capacity: the events' addresses never move.
	if d.slab = d.slab[:0]; cap(d.slab) < n {
		d.slab = make([]plugins.Event, 0, n)
	}
	d.out = d.out[:0]
	r := reader{b: data}
	for len(r.b) > 0 && r.err == nil {
		d.slab = append(d.slab, plugins.Event{})
		ev := &d.slab[len(d.slab)-1]
		doc := r.doc()
		r.meta(&ev.Meta)
		if r.err != nil {
			break
		}
		if len(doc) == 0 {
			ev.Fields = plugins.NewObject(0)
		} else {
			o, err := dp.parse(doc)
			if err != nil {
				return nil, fmt.Errorf("event %d: event document: %w", len(d.out), err)
			}
			ev.Fields = o
		}
		d.out = append(d.out, ev)
	}
	if r.err != nil {
		return nil, fmt.Errorf("event %d: %w", len(d.out), r.err)
	}
	return d.out, nil
}

// unpackEvents decodes packed parts, in parallel, part i with ds[i].
func unpackEvents(parts [][]byte, bin bool, ds []*partDecoder) ([]*plugins.Event, error) {
	evs := make([][]*plugins.Event, len(parts))
	errs := make([]error, len(parts))
	eachPart(len(parts), func(i int) {
		evs[i], errs[i] = ds[i].unpack(parts[i], bin)
	})
	n := 0
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", i, err)
		}
		n += len(evs[i])
	}
	out := make([]*plugins.Event, 0, n)
	for _, e := range evs {
		out = append(out, e...)
	}
	return out, nil
}

// unpackForTransform is unpackEvents for a transform, in the plugin: each
// part's documents are snapshotted (see runTransform) by the worker that
// decoded them, while they are in its cache, rather than in a pass of
// their own. release gives the snapshots and the decoders back.
func unpackForTransform(parts [][]byte, bin bool) (in []*plugins.Event, snaps []snapshot, release func(), err error) {
	evs := make([][]*plugins.Event, len(parts))
	sn := make([][]snapshot, len(parts))
	slabs := make([]*[]snapEntry, len(parts))
	errs := make([]error, len(parts))
	ds := getDecoders(len(parts))
	eachPart(len(parts), func(i int) {
		if evs[i], errs[i] = ds[i].unpack(parts[i], bin); errs[i] == nil {
			sn[i] = make([]snapshot, len(evs[i]))
			slabs[i] = snapRange(evs[i], sn[i])
		}
	})
	release = func() {
		releaseSnaps(slabs)
		putDecoders(ds)
	}
	n := 0
	for i, err := range errs {
		if err != nil {
			release()
			return nil, nil, nil, fmt.Errorf("part %d: %w", i, err)
		}
		n += len(evs[i])
	}
	in = make([]*plugins.Event, 0, n)
	snaps = make([]snapshot, 0, n)
	for i, e := range evs {
		in = append(in, e...)
		snaps = append(snaps, sn[i]...)
	}
	return in, snaps, release, nil
}

// ---- transform results ----

const (
	outReplace = 1
	outMeta    = 2

	opSet    = 0
	opDelete = 1
)

// packOut encodes the events a transform returned (see encodeOut) into
// packed_out parts, in parallel.
func packOut(kept []*plugins.Event, origins []int, snaps []snapshot, fields []*plugins.Object, metas []plugins.Meta, bin bool) [][]byte {
	parts := make([][]byte, (len(kept)+partEvents-1)/partEvents)
	eachPart(len(parts), func(p int) {
		var d differ
		var buf []byte
		for k := p * partEvents; k < min((p+1)*partEvents, len(kept)); k++ {
			buf = appendOut(buf, &d, kept[k], origins[k], snaps, fields, metas, bin)
		}
		parts[p] = buf
	})
	return parts
}

// appendOut appends one returned event; i is the index of the request
// event it was modified from, or -1.
func appendOut(buf []byte, d *differ, ev *plugins.Event, i int, snaps []snapshot, fields []*plugins.Object, metas []plugins.Meta, bin bool) []byte {
	flags := byte(0)
	withMeta := i < 0 || !sameMeta(&ev.Meta, &metas[i])
	if withMeta {
		flags |= outMeta
	}
	buf = binary.AppendUvarint(buf, uint64(i+1))
	if i >= 0 && ev.Fields == fields[i] && ev.Fields != nil {
		d.buf, d.patches = d.buf[:0], d.patches[:0]
		if d.diff(snaps[i], ev.Fields, false) {
			buf = append(buf, flags)
			buf = binary.AppendUvarint(buf, uint64(len(d.patches)))
			for _, p := range d.patches {
				buf = appendString(buf, p.key)
				if p.del {
					buf = append(buf, opDelete)
					continue
				}
				buf = append(buf, opSet)
				buf = binary.AppendUvarint(buf, uint64(len(p.val)))
				buf = append(buf, p.val...)
			}
			if withMeta {
				buf = appendMeta(buf, &ev.Meta)
			}
			return buf
		}
	}
	buf = append(buf, flags|outReplace)
	buf = appendDoc(buf, ev.Fields, bin)
	if withMeta {
		buf = appendMeta(buf, &ev.Meta)
	}
	return buf
}

// aliasString returns b as a string without copying: b must never change
// afterwards. The decoders use it on received messages, which nothing else
// holds, so a decoded event costs no copy of its text.
func aliasString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// parseValue parses a patch value; objects (most values a transform adds)
// come from the shared allocations of dp and point into b (see
// aliasString).
func parseValue(dp *plugins.DocParser, b []byte) (any, error) {
	if len(b) > 0 && b[0] == '{' {
		return dp.ParseObject(aliasString(b))
	}
	return plugins.ParseValue(b)
}

// docParser parses the documents of packed parts, JSON or binary.
type docParser struct {
	bin bool
	// prepared: every binary document to parse was prepared, in order.
	prepared bool
	json     plugins.DocParser
	binReader
}

// reuse makes the memory of the documents parsed so far available to the
// next ones; nothing may read those documents any more.
func (d *docParser) reuse() {
	d.json.Reuse()
	d.binReader.reuse()
	d.prepared = false
}

// parse parses a document; its strings point into doc (see aliasString).
func (d *docParser) parse(doc []byte) (*plugins.Object, error) {
	switch {
	case d.prepared:
		return d.decode(doc)
	case d.bin:
		return d.object(doc)
	}
	return d.json.ParseObject(aliasString(doc))
}

// unpackOut applies packed_out parts to the request's events in (the
// host's own events), appending the results to out. The parts must never
// change afterwards: the events' new strings point into them.
func unpackOut(parts [][]byte, in []*plugins.Event, out []*plugins.Event, bin bool) ([]*plugins.Event, error) {
	var dp docParser
	dp.bin = bin
	used := make([]bool, len(in))
	var sets, dels []int
	var keys []string
	var vals [][]byte
	for _, part := range parts {
		r := reader{b: part}
		for len(r.b) > 0 {
			origin := r.uvarint()
			flags := r.byte()
			if r.err != nil {
				return nil, r.err
			}
			var ev *plugins.Event
			if origin == 0 {
				if flags&outReplace == 0 || flags&outMeta == 0 {
					return nil, errors.New("new event without its document and meta")
				}
				ev = &plugins.Event{}
			} else {
				i := origin - 1
				if i >= uint64(len(in)) || used[i] {
					return nil, fmt.Errorf("origin %d is out of range or used twice", origin)
				}
				used[i] = true
				ev = in[i]
			}
			if flags&outReplace != 0 {
				doc := r.doc()
				if r.err != nil {
					return nil, r.err
				}
				o, err := dp.parse(doc)
				if err != nil {
					return nil, err
				}
				ev.Fields = o
			} else {
				n := r.uvarint()
				if n > uint64(len(r.b)) {
					return nil, errShortPart
				}
				keys, vals, sets, dels = keys[:0], vals[:0], sets[:0], dels[:0]
				for j := uint64(0); j < n && r.err == nil; j++ {
					keys = append(keys, aliasString(r.bytes(r.uvarint())))
					switch r.byte() {
					case opDelete:
						dels = append(dels, len(keys)-1)
						vals = append(vals, nil)
					case opSet:
						sets = append(sets, len(keys)-1)
						vals = append(vals, r.bytes(r.uvarint()))
					default:
						return nil, errors.New("unknown patch operation")
					}
				}
				if r.err != nil {
					return nil, r.err
				}
				if n > 0 && ev.Fields == nil {
					ev.Fields = plugins.NewObject(int(n))
				}
				// Deletions first, then sets, as applyPatches.
				for _, j := range dels {
					ev.Fields.DeleteKey(keys[j])
				}
				for _, j := range sets {
					v, err := parseValue(&dp.json, vals[j])
					if err != nil {
						return nil, fmt.Errorf("patch of key %q: %w", keys[j], err)
					}
					ev.Fields.SetKey(keys[j], v)
				}
			}
			if flags&outMeta != 0 {
				r.meta(&ev.Meta)
				if r.err != nil {
					return nil, r.err
				}
			}
			out = append(out, ev)
		}
	}
	return out, nil
}
