package plugins

import (
	"strings"
)

// Number is a JSON number kept as its literal text, so values such as
// epoch-millisecond timestamps round-trip exactly and no float conversion is
// paid for numbers nobody reads.
type Number string

// Object is an insertion-ordered JSON object: the representation of every
// event's fields.
//
// Values are nil, bool, string, Number, int, int64, float64, *Object or []any.
// Audit documents have few keys per level (usually < 20), where a linear scan
// of a slice beats a map, and keeping insertion order makes the JSON encoding
// deterministic without sorting.
type Object struct {
	fields []field
}

type field struct {
	key string
	val any
}

// NewObject returns an empty object with room for n keys.
func NewObject(n int) *Object {
	return &Object{fields: make([]field, 0, n)}
}

// Len returns the number of keys at this level.
func (o *Object) Len() int { return len(o.fields) }

// Key returns the i-th key in insertion order.
func (o *Object) Key(i int) string { return o.fields[i].key }

// Value returns the i-th value in insertion order.
func (o *Object) Value(i int) any { return o.fields[i].val }

// SetValue replaces the i-th value, keeping its key and position.
func (o *Object) SetValue(i int, v any) { o.fields[i].val = v }

func (o *Object) index(key string) int {
	for i := range o.fields {
		if o.fields[i].key == key {
			return i
		}
	}
	return -1
}

// GetKey returns the value stored under key at this level (no path splitting).
func (o *Object) GetKey(key string) (any, bool) {
	if o == nil {
		return nil, false
	}
	if i := o.index(key); i >= 0 {
		return o.fields[i].val, true
	}
	return nil, false
}

// SetKey stores v under key at this level, replacing an existing value in place.
func (o *Object) SetKey(key string, v any) {
	if i := o.index(key); i >= 0 {
		o.fields[i].val = v
		return
	}
	o.fields = append(o.fields, field{key, v})
}

// DeleteKey removes key at this level and reports whether it was present.
func (o *Object) DeleteKey(key string) bool {
	i := o.index(key)
	if i < 0 {
		return false
	}
	copy(o.fields[i:], o.fields[i+1:])
	o.fields[len(o.fields)-1] = field{}
	o.fields = o.fields[:len(o.fields)-1]
	return true
}

// Rewrite calls fn on every member in order and keeps, in place, the key
// and value it returns, dropping the members for which it returns false.
// It lets a transform reshape an object it owns without allocating a new
// one.
func (o *Object) Rewrite(fn func(i int, key string, val any) (string, any, bool)) {
	w := 0
	for i := range o.fields {
		k, v, keep := fn(i, o.fields[i].key, o.fields[i].val)
		if keep {
			o.fields[w] = field{k, v}
			w++
		}
	}
	clear(o.fields[w:])
	o.fields = o.fields[:w]
}

// Get returns the value at a dotted path such as "source.ip".
func (o *Object) Get(path string) (any, bool) {
	cur := o
	for {
		dot := strings.IndexByte(path, '.')
		if dot < 0 {
			return cur.GetKey(path)
		}
		v, ok := cur.GetKey(path[:dot])
		if !ok {
			return nil, false
		}
		next, ok := v.(*Object)
		if !ok {
			return nil, false
		}
		cur, path = next, path[dot+1:]
	}
}

// GetString returns the string at path; ok is false when absent or not a string.
func (o *Object) GetString(path string) (string, bool) {
	v, ok := o.Get(path)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

// GetObject returns the object at path; ok is false when absent or not an object.
func (o *Object) GetObject(path string) (*Object, bool) {
	v, ok := o.Get(path)
	if !ok {
		return nil, false
	}
	obj, ok := v.(*Object)
	return obj, ok
}

// Set stores v at a dotted path, creating intermediate objects; a non-object
// value in the way is replaced by an object.
func (o *Object) Set(path string, v any) {
	cur := o
	for {
		dot := strings.IndexByte(path, '.')
		if dot < 0 {
			cur.SetKey(path, v)
			return
		}
		head := path[:dot]
		i := cur.index(head)
		var next *Object
		if i >= 0 {
			next, _ = cur.fields[i].val.(*Object)
			if next == nil {
				next = NewObject(4)
				cur.fields[i].val = next
			}
		} else {
			next = NewObject(4)
			cur.fields = append(cur.fields, field{head, next})
		}
		cur, path = next, path[dot+1:]
	}
}

// Delete removes the value at a dotted path and reports whether it existed.
func (o *Object) Delete(path string) bool {
	dot := strings.LastIndexByte(path, '.')
	if dot < 0 {
		return o.DeleteKey(path)
	}
	parent, ok := o.GetObject(path[:dot])
	if !ok {
		return false
	}
	return parent.DeleteKey(path[dot+1:])
}

// Clone returns a deep copy. Strings are immutable and shared.
func (o *Object) Clone() *Object { return o.deepCopy(false) }

// Detached returns a deep copy that shares no memory with o, strings and
// numbers included (see Event.Detached).
func (o *Object) Detached() *Object { return o.deepCopy(true) }

func (o *Object) deepCopy(detach bool) *Object {
	if o == nil {
		return nil
	}
	c := &Object{fields: make([]field, len(o.fields))}
	for i, f := range o.fields {
		if detach {
			f.key = strings.Clone(f.key)
		}
		c.fields[i] = field{f.key, copyValue(f.val, detach)}
	}
	return c
}

// copyValue copies objects and arrays; detach copies strings and numbers
// too (a new interface value and new bytes), else they are shared.
func copyValue(v any, detach bool) any {
	switch t := v.(type) {
	case *Object:
		return t.deepCopy(detach)
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = copyValue(e, detach)
		}
		return c
	case string:
		if detach {
			return strings.Clone(t)
		}
	case Number:
		if detach {
			return Number(strings.Clone(string(t)))
		}
	}
	// bool, nil and numbers of Go types are copied with the interface.
	return v
}

// Map converts the object into plain Go maps (map[string]any, []any, and
// scalars); convenient in tests and for handing documents to other libraries.
func (o *Object) Map() map[string]any {
	m := make(map[string]any, len(o.fields))
	for _, f := range o.fields {
		m[f.key] = toPlain(f.val)
	}
	return m
}

func toPlain(v any) any {
	switch t := v.(type) {
	case *Object:
		return t.Map()
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = toPlain(e)
		}
		return c
	default:
		return v
	}
}

// FromMap builds an Object from plain Go maps; keys are sorted so the result
// is deterministic.
func FromMap(m map[string]any) *Object {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	o := NewObject(len(keys))
	for _, k := range keys {
		o.fields = append(o.fields, field{k, fromPlain(m[k])})
	}
	return o
}

func fromPlain(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return FromMap(t)
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = fromPlain(e)
		}
		return c
	default:
		return v
	}
}

func sortStrings(s []string) {
	// insertion sort: maps converted here are small
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
