package mask

import (
	"net/netip"
	"sort"
)

// Character classes of the scanner.
const (
	cHexDigit  = 1 << iota // 0-9 a-f A-F
	cDigit                 // 0-9
	cLocal                 // an email local-part character we recognise
	cDomain                // an email domain character (ASCII part)
	cWord                  // A-Z a-z 0-9 _
	cIPTrigger             // starts IP analysis: digit, ':'
	cAtTrigger             // may start an at-sign: '@', '\\', '%'
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= cHexDigit | cDigit | cLocal | cDomain | cWord | cIPTrigger
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cLocal | cDomain | cWord
		t[c-'a'+'A'] |= cLocal | cDomain | cWord
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] |= cHexDigit
		t[c-'a'+'A'] |= cHexDigit
	}
	t['_'] |= cWord | cLocal
	for _, c := range ".+-*" {
		t[c] |= cLocal
	}
	t['.'] |= cDomain
	t['-'] |= cDomain
	t[':'] |= cIPTrigger
	t['@'] |= cAtTrigger
	t['\\'] |= cAtTrigger
	t['%'] |= cAtTrigger | cIPTrigger
	for c := 0x80; c < 0x100; c++ {
		t[c] |= cLocal | cDomain
	}
	return t
}()

func isHex(c byte) bool   { return class[c]&cHexDigit != 0 }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isWord(c byte) bool  { return class[c]&cWord != 0 }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isEncColon reports whether s[i:] starts with a percent-encoded colon.
func isEncColon(s string, i int) bool {
	return i+2 < len(s) && s[i] == '%' && s[i+1] == '3' && (s[i+2] == 'A' || s[i+2] == 'a')
}

// matchIPv4 matches a dotted quad at s[p:]: four decimal octets of one to
// three digits (leading zeros allowed, as inet_aton reads them) each at
// most 255, not followed by another digit. Greedy per octet: "1.2.3.45".
func matchIPv4(s string, p int) (end int, a [4]byte, ok bool) {
	i := p
	for k := 0; k < 4; k++ {
		if k > 0 {
			if i >= len(s) || s[i] != '.' {
				return 0, a, false
			}
			i++
		}
		v, n := 0, 0
		for i < len(s) && n < 3 && isDigit(s[i]) {
			nv := v*10 + int(s[i]-'0')
			if nv > 255 {
				break
			}
			v = nv
			i++
			n++
		}
		if n == 0 {
			return 0, a, false
		}
		a[k] = byte(v)
	}
	if i < len(s) && isDigit(s[i]) {
		return 0, a, false
	}
	return i, a, true
}

// matchIPv4Strict is matchIPv4 without leading zeros, as the dotted tail of
// an IPv6 address must be written.
func matchIPv4Strict(s string, p int) (int, bool) {
	end, _, ok := matchIPv4(s, p)
	if !ok {
		return 0, false
	}
	// reject octets with a leading zero
	i := p
	for i < end {
		if s[i] == '0' && i+1 < end && isDigit(s[i+1]) {
			return 0, false
		}
		for i < end && s[i] != '.' {
			i++
		}
		i++
	}
	return end, true
}

// v6match describes the longest IPv6 text found at a position.
type v6match struct {
	end    int  // end offset, or -1
	groups int  // hex groups written (an IPv4 tail counts as two)
	dbl    bool // contains "::"
	v4tail bool // ends with a dotted quad
}

// matchIPv6 returns the longest prefix of s[p:] that is a textual IPv6
// address (RFC 4291 §2.2: up to eight groups of one to four hex digits,
// at most one "::", optionally an IPv4 tail), or end -1.
func matchIPv6(s string, p int) v6match {
	best := v6match{end: -1}
	i, n, dbl := p, 0, false
	if i+1 < len(s) && s[i] == ':' && s[i+1] == ':' {
		dbl = true
		i += 2
		best = v6match{end: i, dbl: true}
	} else if i < len(s) && s[i] == ':' {
		return best
	}
	for {
		// An IPv4 tail may follow a separator.
		if (n > 0 || dbl) && i < len(s) && isDigit(s[i]) {
			if e4, ok := matchIPv4Strict(s, i); ok {
				total := n + 2
				if (dbl && total <= 7) || (!dbl && total == 8) {
					return v6match{end: e4, groups: total, dbl: dbl, v4tail: true}
				}
			}
		}
		j := i
		for j < len(s) && j-i < 4 && isHex(s[j]) {
			j++
		}
		if j == i {
			break
		}
		n++
		i = j
		if (dbl && n <= 7) || (!dbl && n == 8) {
			best = v6match{end: i, groups: n, dbl: dbl}
		}
		if n >= 8 {
			break
		}
		if i+1 < len(s) && s[i] == ':' && s[i+1] == ':' {
			if dbl {
				break
			}
			dbl = true
			i += 2
			if n <= 7 {
				best = v6match{end: i, groups: n, dbl: true}
			}
			continue
		}
		if i+1 < len(s) && s[i] == ':' && (isHex(s[i+1])) {
			i++
			continue
		}
		break
	}
	return best
}

// ipMatch is an address found in a run.
type ipMatch struct {
	start, end int // offsets in the run text
	addr       netip.Addr
}

// run is one run of IP characters being searched for addresses.
type run struct {
	r             string
	v4, v6        bool
	before, after byte // the characters around the run in the string
	fg            int  // length of the run's leading hex group
	segs          []seg
}

// seg is a colon chain of a run: a stretch between dots.
type seg struct{ end, colons int }

func (rn *run) init(segs []seg) []seg {
	rn.fg = hexPrefixLen(rn.r)
	segs = segs[:0]
	if rn.v6 {
		c := 0
		for k := 0; k < len(rn.r); k++ {
			switch rn.r[k] {
			case ':':
				c++
			case '.':
				segs = append(segs, seg{end: k, colons: c})
				c = 0
			}
		}
		segs = append(segs, seg{end: len(rn.r), colons: c})
	}
	rn.segs = segs
	return segs
}

// segAt returns the colon count of the chain holding r[k].
func (rn *run) segAt(k int) int {
	i := sort.Search(len(rn.segs), func(i int) bool { return rn.segs[i].end > k })
	if i == len(rn.segs) {
		i--
	}
	return rn.segs[i].colons
}

// findIP returns the leftmost (then longest) acceptable address in the run
// at a position >= from. exempt marks from as a digit boundary (it follows
// an escape sequence whose hex digits precede it).
func (rn *run) findIP(from int, exempt bool) (ipMatch, bool) {
	r := rn.r
	for p := from; p < len(r); p++ {
		c := r[p]
		var m ipMatch
		found := false
		// An IPv6 address may start where a hex group starts (after a
		// colon or a dot) or inside the run's first hex group (so that junk
		// hex glued in front of an address does not hide it).
		if rn.v6 && (isHex(c) || c == ':') && (p <= rn.fg || !isHex(r[p-1])) {
			if mm := matchIPv6(r, p); mm.end > 0 && rn.acceptV6(p, mm) {
				if a, err := netip.ParseAddr(r[p:mm.end]); err == nil && !a.IsUnspecified() {
					m, found = ipMatch{start: p, end: mm.end, addr: a}, true
				}
			}
		}
		if rn.v4 && isDigit(c) && (p == 0 || !isDigit(r[p-1]) || (exempt && p == from)) {
			if e4, a4, ok := matchIPv4(r, p); ok && (!found || e4 > m.end) {
				m, found = ipMatch{start: p, end: e4, addr: netip.AddrFrom4(a4)}, true
			}
		}
		if found {
			return m, true
		}
	}
	return ipMatch{}, false
}

// acceptV6 filters textual IPv6 candidates that are far more likely
// something else: short forms glued to words (Rust/C++ paths such as
// std::vec or Error::Decode) and windows of colon-separated hex chains
// longer than any address, even with a port glued on (certificate
// fingerprints, hex dumps).
func (rn *run) acceptV6(p int, mm v6match) bool {
	r := rn.r
	if mm.groups < 3 {
		b, a := rn.before, rn.after
		if p > 0 {
			b = r[p-1]
		}
		if mm.end < len(r) {
			a = r[mm.end]
		}
		if isWord(b) || isWord(a) {
			return false
		}
	}
	colons := rn.segAt(p)
	if mm.v4tail {
		colons += rn.segAt(mm.end - 1)
	}
	// An address has at most 8 colons ("::2:3:4:5:6:7:8"), 9 with a port.
	return colons <= 9
}
