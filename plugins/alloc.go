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
