package mask

import (
	"strings"
	"testing"
	"time"
)

// Hostile text must not make scanning quadratic: each of these 200 KB
// strings took seconds to minutes before the bounds in the scanner.
func TestScanIsLinear(t *testing.T) {
	for _, unit := range []string{"\xf5", "1:", "1.", "@", `\u0040`, "%3A", "a@", "fe80::", "1.2.3.4:", "a@b.co ",
		"ab:", "가a@", `\\\\u0040x`, "1:1:1:1:1:1:1::", "0.0.0.0.", "%40a", "a.b@", "x1.2.3.4.", "::ffff:1.2.3.4."} {
		s := strings.Repeat(unit, 200000/len(unit))
		for _, cfg := range []*Config{DefaultConfig(), cfgFor(ModeHash, ModeRedact)} {
			m := newMasker(cfg)
			start := time.Now()
			m.text(s)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%q×%d (%s): %v", unit, len(s)/len(unit), cfg.IP.Mode, d)
			}
		}
	}
}
