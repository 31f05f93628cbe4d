// Package ecs is the `ecs` transform: it turns raw NAVER Cloud Activity
// Tracer and NHN Cloud CloudTrail items into Elastic Common Schema
// documents, as DESIGN.md's "ECS output contract" fixes them.
//
// One mapper per dataset is chosen by the event's Meta.Dataset (or, when
// that is empty, a top-level event.dataset field). Each builds a new
// document: the contract's ECS fields, event.category / event.type from a
// rule table kept as data (rules.yaml, extendable with the `rules:` key),
// and every API field not copied unchanged into an ECS field, unrenamed,
// under ncloud.activity_tracer.* or nhncloud.cloudtrail.*. Events of any
// other dataset, and documents that already carry ecs.version, pass
// through untouched and are counted.
//
// Check validates a document against the contract; the golden tests and
// `forwarder test` use it.
package ecs

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditforwarder/forwarder/plugins"
)

// Version is the ECS release the documents follow (ecs.version).
const Version = "9.1.0"

// The datasets the transform maps.
const (
	DatasetNCP = "ncloud.activity_tracer"
	DatasetNHN = "nhncloud.cloudtrail"
)

const (
	dsOther byte = iota
	dsNCP
	dsNHN
)

type transform struct {
	cfg   *Config
	set   plugins.Settings
	rules *classifier
	m     *metrics

	doc        ecsDoc
	arenas     *sync.Pool // of *plugins.ObjectArena, shared by the forks
	buf        []byte
	nhnActions map[string]*nhnAction
	interned   map[string]any
	responses  map[string]*plugins.Object // parsed NHN responses, see parseResponse
	last       struct {                   // event.created of the previous event, reused within a batch
		t time.Time
		s any
	}
}

var _ plugins.ParallelTransform = (*transform)(nil)

func newTransform(set plugins.Settings, cfg *Config) (*transform, error) {
	rules, err := newClassifier(cfg.Rules, cfg.Verbs)
	if err != nil {
		return nil, err
	}
	if set.Now == nil {
		set.Now = time.Now
	}
	m, err := newMetrics(set.Metrics)
	if err != nil {
		return nil, err
	}
	return &transform{cfg: cfg, set: set, rules: rules, m: m, arenas: new(sync.Pool),
		nhnActions: map[string]*nhnAction{}, interned: map[string]any{}, responses: map[string]*plugins.Object{}}, nil
}

// Fork implements plugins.ParallelTransform: a mapper with scratch
// buffers and caches of its own, sharing the rules and metrics.
func (t *transform) Fork() plugins.ProcessFunc {
	f := &transform{cfg: t.cfg, set: t.set, rules: t.rules.fork(), m: t.m, arenas: t.arenas,
		nhnActions: map[string]*nhnAction{}, interned: map[string]any{}, responses: map[string]*plugins.Object{}}
	return f.Process
}

func (t *transform) Start(context.Context) error { return nil }
func (t *transform) Close(context.Context) error { return nil }

// Process maps every event of a known dataset in place (its Fields are
// replaced by the ECS document) and passes the others through.
func (t *transform) Process(ctx context.Context, events []*plugins.Event) ([]*plugins.Event, error) {
	// The documents of a batch come from one arena, recycled when the
	// pipeline is done with the batch; outside a pipeline they are plain
	// allocations.
	a, _ := t.arenas.Get().(*plugins.ObjectArena)
	if a == nil {
		a = new(plugins.ObjectArena)
	}
	if plugins.OnRelease(ctx, func() { a.Reset(); t.arenas.Put(a) }) {
		t.doc.arena = a
	} else {
		t.arenas.Put(a)
	}
	defer func() { t.doc.arena = nil }()
	var counts [4]int // ncp, nhn, other, already ECS
	for _, ev := range events {
		switch t.mapEvent(ev) {
		case dsNCP:
			counts[0]++
		case dsNHN:
			counts[1]++
		case dsOther:
			counts[2]++
		default:
			counts[3]++
		}
	}
	t.m.add(counts)
	return events, nil
}

const dsAlreadyECS byte = 0xff

// mapEvent maps ev in place and returns the dataset it was mapped as.
func (t *transform) mapEvent(ev *plugins.Event) byte {
	if ev == nil || ev.Fields == nil {
		return dsOther
	}
	ds := datasetOf(ev)
	if ds == dsOther {
		return dsOther
	}
	if v, ok := ev.Fields.GetKey("ecs"); ok {
		if _, isObj := v.(*plugins.Object); isObj {
			return dsAlreadyECS
		}
	}
	if ev.Meta.Dataset == "" {
		stripDatasetHint(ev.Fields)
	}
	var doc *plugins.Object
	if ds == dsNCP {
		doc = t.mapNCP(ev, ev.Fields)
		ev.Meta.Dataset = DatasetNCP
	} else {
		doc = t.mapNHN(ev, ev.Fields)
		ev.Meta.Dataset = DatasetNHN
	}
	if ev.Meta.ID == "" {
		ev.Meta.ID, _ = t.doc.eventID.(string)
	}
	ev.Fields = doc
	return ds
}

// datasetOf picks the mapper: Meta.Dataset, else a top-level event.dataset.
func datasetOf(ev *plugins.Event) byte {
	name := ev.Meta.Dataset
	if name == "" {
		if v, ok := ev.Fields.GetKey("event.dataset"); ok {
			name = str(v)
		} else if v, ok := ev.Fields.Get("event.dataset"); ok {
			name = str(v)
		}
	}
	switch name {
	case DatasetNCP:
		return dsNCP
	case DatasetNHN:
		return dsNHN
	}
	return dsOther
}

// stripDatasetHint removes the event.dataset that named the dataset of a
// raw item, so it does not end up under the vendor namespace.
func stripDatasetHint(o *plugins.Object) {
	if o.DeleteKey("event.dataset") {
		return
	}
	if e, ok := o.GetObject("event"); ok {
		e.DeleteKey("dataset")
		if e.Len() == 0 {
			o.DeleteKey("event")
		}
	}
}

// formatTime renders an event time for @timestamp.
func (t *transform) formatTime(ts time.Time) any {
	t.buf = appendTimestamp(t.buf[:0], ts)
	return string(t.buf)
}

// intern boxes a derived string (an email domain, an account id) once:
// they repeat across events.
func (t *transform) intern(s string) any {
	if v, ok := t.interned[s]; ok {
		return v
	}
	if len(t.interned) >= maxCacheEntries {
		clear(t.interned)
	}
	// A copy, so the cache does not pin the whole input the string came from.
	s = strings.Clone(s)
	v := any(s)
	t.interned[s] = v
	return v
}

// fallbackTimestamp is @timestamp when the item's eventTime is missing or
// unreadable: the time the source reported, else the fetch time. The raw
// eventTime stays under the vendor namespace.
func (t *transform) fallbackTimestamp(ev *plugins.Event) any {
	t.m.badTime.Inc()
	if !ev.Meta.Time.IsZero() {
		return t.formatTime(ev.Meta.Time)
	}
	return t.created(ev)
}

// created is event.created: when the source fetched the event.
func (t *transform) created(ev *plugins.Event) any {
	r := ev.Meta.Received
	if r.IsZero() {
		r = t.set.Now()
	}
	if t.last.s != nil && r.Equal(t.last.t) {
		return t.last.s
	}
	t.last.t, t.last.s = r, t.formatTime(r)
	return t.last.s
}

// original is event.original: the raw item as JSON.
func (t *transform) original(item *plugins.Object) any {
	t.buf = item.AppendJSON(t.buf[:0])
	return string(t.buf)
}

type metrics struct {
	events  [4]prometheus.Counter
	badTime prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "forwarder_ecs_events_total",
		Help: "Events seen by the ecs transform, by dataset and result (mapped, passthrough: unknown dataset, already_ecs).",
	}, []string{"dataset", "result"})
	bad := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "forwarder_ecs_invalid_event_time_total",
		Help: "Events whose eventTime was missing or unreadable; @timestamp then falls back to the source's time.",
	})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			return nil, err
		}
		if err := reg.Register(bad); err != nil {
			return nil, err
		}
	}
	return &metrics{
		events: [4]prometheus.Counter{
			vec.WithLabelValues(DatasetNCP, "mapped"),
			vec.WithLabelValues(DatasetNHN, "mapped"),
			vec.WithLabelValues("other", "passthrough"),
			vec.WithLabelValues("any", "already_ecs"),
		},
		badTime: bad,
	}, nil
}

func (m *metrics) add(counts [4]int) {
	for i, n := range counts {
		if n > 0 {
			m.events[i].Add(float64(n))
		}
	}
}
