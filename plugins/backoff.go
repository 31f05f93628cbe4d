package plugins

import (
	"math/rand/v2"
	"time"
)

// Backoff returns the delay before retry n (n from 0): initial·2ⁿ capped at
// max, with jitter drawn from [d/2, d] so that many clients failing together
// do not retry together. The engine and the API sources retry with it.
func Backoff(n int, initial, max time.Duration) time.Duration {
	d := initial
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := int64(d / 2)
	if half <= 0 {
		return d
	}
	return time.Duration(half + rand.Int64N(half+1))
}
