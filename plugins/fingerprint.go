package plugins

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// AppendCanonicalJSON appends the canonical JSON encoding of v (a value of
// the Object model): object members sorted by key (byte order of the UTF-8
// key), no insignificant whitespace, arrays in order, strings escaped as
// AppendJSONString escapes them, numbers as their literal text (Number) or
// their shortest decimal form. Two documents that differ only in key order
// or whitespace have the same canonical encoding.
func AppendCanonicalJSON(dst []byte, v any) []byte {
	switch t := v.(type) {
	case *Object:
		if t == nil {
			return append(dst, "null"...)
		}
		idx := make([]int, len(t.fields))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int {
			ka, kb := t.fields[a].key, t.fields[b].key
			switch {
			case ka < kb:
				return -1
			case ka > kb:
				return 1
			}
			return 0
		})
		dst = append(dst, '{')
		for n, i := range idx {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, t.fields[i].key)
			dst = append(dst, ':')
			dst = AppendCanonicalJSON(dst, t.fields[i].val)
		}
		return append(dst, '}')
	case []any:
		dst = append(dst, '[')
		for i, e := range t {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendCanonicalJSON(dst, e)
		}
		return append(dst, ']')
	case map[string]any:
		return AppendCanonicalJSON(dst, FromMap(t))
	default:
		return AppendJSONValue(dst, v)
	}
}

// Fingerprint returns the lowercase hex SHA-256 of the canonical JSON of o
// (AppendCanonicalJSON). It is the stable event id of API items that carry
// no id of their own (NHN Cloud CloudTrail v1.0 items without
// eventLogUuid): every component that computes an item's id — the API
// sources, the file source and the ecs transform — uses this function, so
// the same item always gets the same id wherever it was read.
func Fingerprint(o *Object) string {
	var stack [2048]byte
	buf := AppendCanonicalJSON(stack[:0], o)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}
