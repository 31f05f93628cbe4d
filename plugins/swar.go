package plugins

import (
	"encoding/binary"
	"unsafe"
)

// Eight bytes at a time: the JSON string scanners (parse and encode) skip
// plain runs — no quote, backslash, control character or non-ASCII byte —
// a word at a time, as SIMD JSON parsers do with wider registers.

const (
	swarOnes  = 0x0101010101010101
	swarHighs = 0x8080808080808080
)

// plainWords returns how many bytes from s[i], in whole words of 8, hold
// no byte a JSON string scanner must stop at.
func plainWords(s string, i int) int {
	start := i
	for i+8 <= len(s) {
		x := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
		if hasSpecial(x) {
			break
		}
		i += 8
	}
	return i - start
}

// hasSpecial reports whether a byte of x is a quote, a backslash, below
// 0x20 or non-ASCII: the classic exact "has zero byte" and "has byte less
// than" word tests, plus the high bits.
func hasSpecial(x uint64) bool {
	q := x ^ (swarOnes * '"')
	b := x ^ (swarOnes * '\\')
	zq := (q - swarOnes) &^ q
	zb := (b - swarOnes) &^ b
	lt := (x - swarOnes*0x20) &^ x
	return (zq|zb|lt|x)&swarHighs != 0
}
