package nhncloud

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/auditforwarder/forwarder/plugins"
)

// Dataset is the Meta.Dataset of every event this source emits.
const Dataset = "nhncloud.cloudtrail"

// EventID returns an item's stable id: its eventLogUuid, or, when the item
// has none (v1.0), Fingerprint(item).
func EventID(item *plugins.Object) string {
	if v, ok := item.GetKey("eventLogUuid"); ok {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
	}
	return Fingerprint(item)
}

// Fingerprint returns the hex SHA-256 of the item's canonical JSON: keys
// sorted at every level, no insignificant whitespace, strings escaped as
// plugins.AppendJSONString does, numbers as the API wrote them. The same
// item read twice has the same fingerprint whatever its key order.
func Fingerprint(item *plugins.Object) string {
	bp := canonPool.Get().(*[]byte)
	buf := appendCanonical((*bp)[:0], item)
	sum := sha256.Sum256(buf)
	if cap(buf) <= 1<<20 {
		*bp = buf
		canonPool.Put(bp)
	}
	return hex.EncodeToString(sum[:])
}

var canonPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func appendCanonical(dst []byte, v any) []byte {
	switch t := v.(type) {
	case *plugins.Object:
		if t == nil {
			return append(dst, "null"...)
		}
		// Sort key positions: insertion sort, objects are small.
		var small [32]int
		idx := small[:0]
		if t.Len() > len(small) {
			idx = make([]int, 0, t.Len())
		}
		for i := 0; i < t.Len(); i++ {
			j := len(idx)
			idx = append(idx, i)
			for j > 0 && t.Key(idx[j-1]) > t.Key(i) {
				idx[j] = idx[j-1]
				j--
			}
			idx[j] = i
		}
		dst = append(dst, '{')
		for n, i := range idx {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = plugins.AppendJSONString(dst, t.Key(i))
			dst = append(dst, ':')
			dst = appendCanonical(dst, t.Value(i))
		}
		return append(dst, '}')
	case []any:
		dst = append(dst, '[')
		for i, e := range t {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendCanonical(dst, e)
		}
		return append(dst, ']')
	default:
		return plugins.AppendJSONValue(dst, v)
	}
}
