package plugins

// AllocObjects fills dst with len(dst) new empty objects, object i having
// room for sizes[i] keys. The objects and their members come from two
// shared allocations instead of two per object, which matters to
// transforms that build a document of many small objects per event (an
// ECS document has a dozen). Each object's storage is capped at its size,
// so an object growing past it reallocates its own storage and never
// overwrites a neighbour. len(sizes) must be at least len(dst).
func AllocObjects(dst []*Object, sizes []int) {
	total := 0
	for _, n := range sizes[:len(dst)] {
		total += n
	}
	objs := make([]Object, len(dst))
	fields := make([]field, total)
	off := 0
	for i := range dst {
		n := sizes[i]
		objs[i].fields = fields[off : off : off+n]
		dst[i] = &objs[i]
		off += n
	}
}

// Append adds key and v after the last member without looking for an
// existing member of that name: the caller guarantees key is new (a
// duplicate would be encoded twice). It is for code that builds objects
// from keys it knows are distinct, where SetKey's scan is wasted work.
func (o *Object) Append(key string, v any) {
	o.fields = append(o.fields, field{key: key, val: v})
}

// ObjectArena allocates the objects of documents that live and die
// together (one batch's) from shared chunks, and recycles the chunks on
// Reset. A transform that builds a new document per event uses one per
// batch and resets it when the batch is released (see OnRelease): the
// documents then cost the garbage collector nothing. Not safe for
// concurrent use; the zero value is ready.
type ObjectArena struct {
	objs   chunks[Object]
	fields chunks[field]
	o      []Object
	f      []field
}

// Alloc is AllocObjects from the arena: it fills dst with new empty
// objects, object i having room for sizes[i] keys (capped, as there).
func (a *ObjectArena) Alloc(dst []*Object, sizes []int) {
	total := 0
	for _, n := range sizes[:len(dst)] {
		total += n
	}
	if cap(a.o)-len(a.o) < len(dst) {
		a.o = nextChunk(&a.objs, a.o, max(256, len(dst)))
	}
	if cap(a.f)-len(a.f) < total {
		a.f = nextChunk(&a.fields, a.f, max(4096, total))
	}
	base := len(a.o)
	a.o = a.o[:base+len(dst)]
	for i := range dst {
		n := sizes[i]
		off := len(a.f)
		a.o[base+i].fields = a.f[off : off : off+n]
		a.f = a.f[:off+n]
		dst[i] = &a.o[base+i]
	}
}

// Reset clears every object allocated since the last Reset and makes the
// memory reusable. Call it only once nothing reads those objects.
func (a *ObjectArena) Reset() {
	a.objs.reuse(a.o)
	a.fields.reuse(a.f)
	a.o, a.f = nil, nil
}
