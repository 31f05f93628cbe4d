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

func (p *parser) boxString(s string) any {
	if len(p.strs) == cap(p.strs) {
		p.strs = make([]string, 0, p.chunk(boxChunk))
	}
	p.strs = append(p.strs, s)
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ = stringTypePtr
	e.data = unsafe.Pointer(&p.strs[len(p.strs)-1])
	return v
}

func (p *parser) boxNumber(n Number) any {
	if len(p.nums) == cap(p.nums) {
		p.nums = make([]Number, 0, p.chunk(boxChunk/2))
	}
	p.nums = append(p.nums, n)
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ = numberTypePtr
	e.data = unsafe.Pointer(&p.nums[len(p.nums)-1])
	return v
}
