package checkpoint

import "sync"

// Tracker orders the batches of one source. Add registers a batch in emit
// order; Ack marks one delivered, in any order. The committed checkpoint only
// ever advances to the highest batch acknowledged together with every batch
// before it, so an out-of-order acknowledgement never skips a hole.
type Tracker struct {
	mu      sync.Mutex
	headSeq uint64 // sequence number of pending[0]
	pending []entry
	last    []byte // checkpoint of the newest batch added
}

type entry struct {
	cp    []byte
	acked bool
}

// NewTracker returns a tracker whose committed position starts at start.
func NewTracker(start []byte) *Tracker { return &Tracker{last: start} }

// Add registers the next batch and returns its sequence number.
func (t *Tracker) Add(cp []byte) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = append(t.pending, entry{cp: cp})
	if cp != nil {
		t.last = cp
	}
	return t.headSeq + uint64(len(t.pending)) - 1
}

// Ack marks batch seq delivered. When that lets the committed position
// advance, it returns the new checkpoint and true.
func (t *Tracker) Ack(seq uint64) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < t.headSeq || seq >= t.headSeq+uint64(len(t.pending)) {
		return nil, false
	}
	t.pending[seq-t.headSeq].acked = true
	var cp []byte
	advanced := false
	n := 0
	for n < len(t.pending) && t.pending[n].acked {
		if t.pending[n].cp != nil {
			cp = t.pending[n].cp
			advanced = true
		}
		n++
	}
	if n > 0 {
		// Shift rather than reslice so the backing array does not grow forever.
		rest := copy(t.pending, t.pending[n:])
		for i := rest; i < len(t.pending); i++ {
			t.pending[i] = entry{}
		}
		t.pending = t.pending[:rest]
		t.headSeq += uint64(n)
	}
	return cp, advanced
}

// Pending returns the number of batches emitted and not yet committed.
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Last returns the checkpoint of the newest batch added (or the start).
func (t *Tracker) Last() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Committed returns the number of batches committed so far: every batch
// whose sequence number is below it is acknowledged together with all
// before it.
func (t *Tracker) Committed() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.headSeq
}
