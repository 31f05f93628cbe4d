package engine

import (
	"sort"
	"sync"
)

// Health aggregates component status for /readyz. A component is ready
// unless it (or the engine on its behalf) reported an error.
type Health struct {
	mu      sync.Mutex
	reports map[string]map[string]string // component -> reporter -> error text
	started bool
	// details adds facts to /readyz (cluster membership); nil = none.
	details func() map[string]any
}

func newHealth() *Health { return &Health{reports: map[string]map[string]string{}} }

func (h *Health) set(component, reporter string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reports[component] == nil {
		h.reports[component] = map[string]string{}
	}
	if err == nil {
		delete(h.reports[component], reporter)
		return
	}
	h.reports[component][reporter] = err.Error()
}

func (h *Health) setStarted(v bool) {
	h.mu.Lock()
	h.started = v
	h.mu.Unlock()
}

// Ready reports whether the pipeline is running with every component
// healthy, and the problems otherwise (component id → reason).
func (h *Health) Ready() (bool, map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	problems := map[string]string{}
	for c, r := range h.reports {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if problems[c] != "" {
				problems[c] += "; "
			}
			problems[c] += r[k]
		}
	}
	if !h.started {
		problems["engine"] = "not started"
	}
	return len(problems) == 0, problems
}
