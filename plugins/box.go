package plugins

import "unsafe"

// Boxing a string into an interface value allocates its 16-byte header on
// the heap, once per string: most of a parsed document's allocations. The
// parser instead keeps the headers in chunks and makes interface values
// that point into them, one allocation per chunk. This is sound because an
// interface's data is never written through: the chunk element is written
// once, before the interface is made, and the GC keeps the chunk alive as
// long as any interface points into it.

type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

var (
	stringTypePtr = typeOf("")
	numberTypePtr = typeOf(Number(""))
)

func typeOf(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

const boxChunk = 32

// chunk returns n, times 32 for a DocParser, whose chunks serve many documents.
func (p *parser) chunk(n int) int {
	if p.shared {
		return 32 * n
	}
	return n
}

// Boxer makes interface values of strings and numbers whose headers come
// from shared chunks (see above): for decoders that box many values which
// live and die together, such as the documents of one batch. The zero
// value is ready; not safe for concurrent use.
type Boxer struct {
	// Chunk is the number of strings per allocation (32 when zero);
	// numbers, rarer, come Chunk/2 at a time.
	Chunk int

	strs []string
	nums []Number
	// For a DocParser's parser, where the chunks are recycled (Reuse).
	rcStrs *chunks[string]
	rcNums *chunks[Number]
}

func (b *Boxer) chunk() int {
	if b.Chunk > 0 {
		return b.Chunk
	}
	return boxChunk
}

// String returns s as an interface value.
func (b *Boxer) String(s string) any {
	if len(b.strs) == cap(b.strs) {
		b.strs = nextChunk(b.rcStrs, b.strs, b.chunk())
	}
	b.strs = append(b.strs, s)
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ = stringTypePtr
	e.data = unsafe.Pointer(&b.strs[len(b.strs)-1])
	return v
}

// Number returns n as an interface value.
func (b *Boxer) Number(n Number) any {
	if len(b.nums) == cap(b.nums) {
		b.nums = nextChunk(b.rcNums, b.nums, max(1, b.chunk()/2))
	}
	b.nums = append(b.nums, n)
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ = numberTypePtr
	e.data = unsafe.Pointer(&b.nums[len(b.nums)-1])
	return v
}

// Reuse makes the memory of every value boxed so far available to the
// values boxed next, as DocParser.Reuse does for documents. Call it only
// once nothing reads those values: they are cleared and overwritten.
func (b *Boxer) Reuse() {
	if b.rcStrs == nil {
		// Chunks are tracked from the first Reuse on; those handed out
		// before it, but the current ones, are left to the collector.
		b.rcStrs, b.rcNums = new(chunks[string]), new(chunks[Number])
	}
	b.rcStrs.reuse(b.strs)
	b.rcNums.reuse(b.nums)
	b.strs, b.nums = nil, nil
}

// recycler keeps a DocParser's chunks for reuse (DocParser.Reuse).
type recycler struct {
	objs chunks[Object]
	slab chunks[field]
	strs chunks[string]
	nums chunks[Number]
}

// chunks holds the chunks of one kind handed out since the last reuse, and
// the free ones.
type chunks[T any] struct {
	used, free [][]T
}

// nextChunk returns an empty chunk with room for n values to replace cur,
// which is full: a free one when c has one that large, else a new one.
func nextChunk[T any](c *chunks[T], cur []T, n int) []T {
	if c == nil {
		return make([]T, 0, n)
	}
	if cap(cur) > 0 {
		c.used = append(c.used, cur)
	}
	for len(c.free) > 0 {
		k := c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		if cap(k) >= n {
			return k
		}
		// Too small for this request: dropped, so the list stays short.
	}
	return make([]T, 0, n)
}

// reuse clears every chunk handed out, cur included, and frees them.
func (c *chunks[T]) reuse(cur []T) {
	if cap(cur) > 0 {
		c.used = append(c.used, cur)
	}
	for _, k := range c.used {
		clear(k[:cap(k)])
		c.free = append(c.free, k[:0])
	}
	clear(c.used)
	c.used = c.used[:0]
}
