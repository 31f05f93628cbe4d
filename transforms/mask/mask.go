package mask

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditforwarder/forwarder/plugins"
)

// IPFields are the ECS fields mapped as type ip. In truncate mode they keep
// a valid address in place; in hash and redact modes the masked value moves
// to the keyword sibling <field>_masked and the ip field is removed, so an
// Elasticsearch ip mapping never rejects the document.
var IPFields = []string{"source.ip", "destination.ip", "client.ip", "server.ip", "host.ip", "related.ip"}

// MaskedSuffix is appended to an IPFields name for the keyword sibling.
const MaskedSuffix = "_masked"

func isIPParent(k string) bool {
	switch k {
	case "source", "destination", "client", "server", "host", "related":
		return true
	}
	return false
}

type transform struct {
	cfg    *Config
	m      *masker
	fields [][2]string // parent path, key
	moveIP bool

	ipCounter, emailCounter prometheus.Counter
}

var _ plugins.ParallelTransform = (*transform)(nil)

func newTransform(set plugins.Settings, cfg *Config) (*transform, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mask: %w", err)
	}
	t := &transform{cfg: cfg, m: newMasker(cfg)}
	t.moveIP = t.m.ipMode == modeHash || t.m.ipMode == modeRedact
	for _, f := range cfg.Fields {
		parent, key := "", f
		if dot := strings.LastIndexByte(f, '.'); dot >= 0 {
			parent, key = f[:dot], f[dot+1:]
		}
		t.fields = append(t.fields, [2]string{parent, key})
	}
	if set.Metrics != nil {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_mask_addresses_total",
			Help: "Addresses rewritten by a mask transform, by kind (ip, email).",
		}, []string{"kind"})
		if err := set.Metrics.Register(c); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				c = are.ExistingCollector.(*prometheus.CounterVec)
			} else {
				return nil, err
			}
		}
		t.ipCounter, t.emailCounter = c.WithLabelValues("ip"), c.WithLabelValues("email")
	}
	return t, nil
}

// Fork implements plugins.ParallelTransform: a masker with scratch
// buffers and a cache of its own, sharing the configuration and metrics.
func (t *transform) Fork() plugins.ProcessFunc {
	f := *t
	f.m = newMasker(t.cfg)
	return f.Process
}

func (t *transform) Start(context.Context) error { return nil }
func (t *transform) Close(context.Context) error { return nil }

// Process masks every event in place.
func (t *transform) Process(_ context.Context, events []*plugins.Event) ([]*plugins.Event, error) {
	for _, ev := range events {
		if ev != nil && ev.Fields != nil {
			ev.Fields = t.Document(ev.Fields)
		}
	}
	if t.ipCounter != nil {
		t.ipCounter.Add(float64(t.m.ips))
		t.emailCounter.Add(float64(t.m.emails))
	}
	t.m.ips, t.m.emails = 0, 0
	return events, nil
}

// Document masks doc in place and returns it (a new root only when a
// top-level key itself had to be masked).
func (t *transform) Document(doc *plugins.Object) *plugins.Object {
	if len(t.fields) == 0 {
		return t.object(doc, 0, "")
	}
	for _, f := range t.fields {
		parent := doc
		if f[0] != "" {
			var ok bool
			if parent, ok = doc.GetObject(f[0]); !ok {
				continue
			}
		}
		depth, pk := strings.Count(f[0], ".")+1, ""
		if f[0] == "" {
			depth = 0
		} else if depth == 1 {
			pk = f[0]
		}
		for i := 0; i < parent.Len(); i++ {
			if parent.Key(i) == f[1] {
				if t.entry(parent, i, depth, pk) {
					t.moveIPField(parent)
				}
				break
			}
		}
	}
	return doc
}

// object masks the values and keys of o; depth 0 is the document root and
// pk the root key o sits under when depth is 1.
func (t *transform) object(o *plugins.Object, depth int, pk string) *plugins.Object {
	move := false
	for i := 0; i < o.Len(); i++ {
		if t.entry(o, i, depth, pk) {
			move = true
		}
	}
	if move {
		t.moveIPField(o)
	}
	return t.keys(o)
}

// entry masks the i-th value of o. It reports true when the value is an
// ECS ip field whose masked value must move to its keyword sibling.
func (t *transform) entry(o *plugins.Object, i int, depth int, pk string) bool {
	switch v := o.Value(i).(type) {
	case string:
		if nv, ok := t.m.value(v); ok {
			o.SetValue(i, nv)
			return t.moveIP && depth == 1 && o.Key(i) == "ip" && isIPParent(pk)
		}
	case *plugins.Object:
		k := ""
		if depth == 0 {
			k = o.Key(i)
		}
		if no := t.object(v, depth+1, k); no != v {
			o.SetValue(i, no)
		}
	case []any:
		if t.array(v, depth+1) {
			return t.moveIP && depth == 1 && o.Key(i) == "ip" && isIPParent(pk)
		}
	}
	return false
}

// array masks a in place and reports whether a string element changed.
func (t *transform) array(a []any, depth int) bool {
	changed := false
	for i, e := range a {
		switch v := e.(type) {
		case string:
			if nv, ok := t.m.value(v); ok {
				a[i] = nv
				changed = true
			}
		case *plugins.Object:
			if no := t.object(v, depth+1, ""); no != v {
				a[i] = no
			}
		case []any:
			if t.array(v, depth+1) {
				changed = true
			}
		}
	}
	return changed
}

// moveIPField moves o["ip"] (already masked) to o["ip_masked"], merging
// with a value already there.
func (t *transform) moveIPField(o *plugins.Object) {
	v, ok := o.GetKey("ip")
	if !ok {
		return
	}
	o.DeleteKey("ip")
	const dst = "ip" + MaskedSuffix
	old, ok := o.GetKey(dst)
	if !ok {
		o.SetKey(dst, v)
		return
	}
	o.SetKey(dst, mergeValues(old, v))
}

// mergeValues combines two values into a list without duplicates.
func mergeValues(a, b any) any {
	var out []any
	add := func(v any) {
		if l, ok := v.([]any); ok {
			for _, e := range l {
				add1(&out, e)
			}
			return
		}
		add1(&out, v)
	}
	add(a)
	add(b)
	if len(out) == 1 {
		return out[0]
	}
	return out
}

func add1(out *[]any, v any) {
	for _, e := range *out {
		if s1, ok := e.(string); ok {
			if s2, ok := v.(string); ok && s1 == s2 {
				return
			}
		}
	}
	*out = append(*out, v)
}

// keys masks addresses in o's keys (an email used as a map key, say). The
// object is rebuilt only when a key changed; keys that collide after
// masking keep all their values in a list.
func (t *transform) keys(o *plugins.Object) *plugins.Object {
	first := -1
	var nk string
	for i := 0; i < o.Len(); i++ {
		if k, ok := t.m.text(o.Key(i)); ok {
			first, nk = i, k
			break
		}
	}
	if first < 0 {
		return o
	}
	out := plugins.NewObject(o.Len())
	for i := 0; i < o.Len(); i++ {
		k := o.Key(i)
		switch {
		case i < first:
		case i == first:
			k = nk
		default:
			k, _ = t.m.text(k)
		}
		if old, ok := out.GetKey(k); ok {
			out.SetKey(k, mergeValues(old, o.Value(i)))
			continue
		}
		out.SetKey(k, o.Value(i))
	}
	return out
}

// NewStringMasker returns a function that masks every IP and email address
// in a string under cfg's policy (cfg nil: DefaultConfig). It is safe for
// concurrent use; the forwarder's log handler uses it so that its own log
// lines follow the same policy as the documents.
func NewStringMasker(cfg *Config) (func(string) string, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	m := newMasker(cfg)
	return func(s string) string {
		mu.Lock()
		defer mu.Unlock()
		out, _ := m.text(s)
		return out
	}, nil
}
