package plugintest

import (
	"strconv"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Event returns test event n: an ECS-like document of about size bytes of
// JSON (at least about 250), with an id, a time, an IP and an email
// address, padded by a message. Benchmarks of the plugin protocol use it
// on both sides, so their figures compare.
func Event(n, size int) *plugins.Event {
	id := "ev-" + strconv.Itoa(n)
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Millisecond)
	o := plugins.NewObject(8)
	o.SetKey("@timestamp", ts.Format("2006-01-02T15:04:05.000Z"))
	ev := plugins.NewObject(4)
	ev.SetKey("id", id)
	ev.SetKey("dataset", "test")
	ev.SetKey("sequence", n)
	ev.SetKey("action", "login")
	o.SetKey("event", ev)
	src := plugins.NewObject(1)
	src.SetKey("ip", "203.0.113."+strconv.Itoa(n%250+1))
	o.SetKey("source", src)
	user := plugins.NewObject(1)
	user.SetKey("email", "user"+strconv.Itoa(n%97)+"@example.com")
	o.SetKey("user", user)
	o.SetKey("message", strings.Repeat("x", max(0, size-190)))
	return &plugins.Event{Fields: o, Meta: plugins.Meta{Source: "test", Dataset: "test", ID: id, Time: ts}}
}
