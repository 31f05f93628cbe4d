package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Replacement tokens of the redact modes.
const (
	RedactedIP    = "[REDACTED_IP]"
	RedactedEmail = "[REDACTED_EMAIL]"
)

// Pseudonym shape of the hash modes: prefix + hashHexLen hex digits of
// HMAC-SHA256(hash_key, kind || 0 || canonical address).
const (
	ipHashPrefix    = "ip-"
	emailHashPrefix = "user-"
	hashHexLen      = 16
)

const (
	modeKeep = iota
	modeTruncate
	modePartial
	modeHash
	modeRedact
)

func modeOf(s string) int {
	switch s {
	case ModeTruncate:
		return modeTruncate
	case ModePartial:
		return modePartial
	case ModeHash:
		return modeHash
	case ModeRedact:
		return modeRedact
	}
	return modeKeep
}

// maxLocalSpan bounds how far left of an at-sign a local part is looked
// for (RFC 5321 allows 64 octets; escapes make a spelling longer), and
// maxDomainSpan how far right a domain is (253 octets), so that hostile
// text cannot make scanning quadratic.
const (
	maxLocalSpan  = 256
	maxDomainSpan = 512
)

// maxCache bounds the memo of masked addresses; it is cleared when full.
const maxCache = 4096

// masker finds and rewrites addresses in strings. It is not safe for
// concurrent use: a transform instance owns one (Process is never called
// concurrently) and the log scrubber guards its own with a mutex.
type masker struct {
	ipMode, emailMode int
	v4bits, v6bits    int
	trig              [256]bool
	mac               hash.Hash
	sum               []byte

	cache map[string]memo
	// seen filters memo lookups: most strings with a trigger (times, ids)
	// were never remembered, and this is cheaper than hashing them.
	seen [wholeSlots]bool

	// per-call state
	s          string
	out        []byte
	last       int // s[:last] has been copied to out (or replaced)
	nrep       int
	firstStart int
	firstEnd   int
	firstRepl  string
	firstBoxed any
	boxed      any  // text's result boxed, when it is a remembered replacement
	touching   bool // a replacement of this pass has a non-delimiter neighbour
	scorch     bool // replace whole runs by redact tokens (see scorched)
	scratch    []byte
	idx        []int
	segs       []seg

	// counters since the last take()
	ips, emails int
}

func newMasker(cfg *Config) *masker {
	m := &masker{
		ipMode:    modeOf(cfg.IP.Mode),
		emailMode: modeOf(cfg.Email.Mode),
		v4bits:    cfg.IP.IPv4Prefix,
		v6bits:    cfg.IP.IPv6Prefix,
		cache:     make(map[string]memo, 256),
	}
	if m.ipMode == modeTruncate && m.v4bits == 32 && m.v6bits == 128 {
		m.ipMode = modeKeep
	}
	if m.ipMode == modeHash || m.emailMode == modeHash {
		m.mac = hmac.New(sha256.New, []byte(cfg.HashKey.Reveal()))
	}
	for c := 0; c < 256; c++ {
		k := class[c]
		if m.ipMode != modeKeep && k&cIPTrigger != 0 {
			m.trig[c] = true
		}
		if m.emailMode != modeKeep && k&cAtTrigger != 0 {
			m.trig[c] = true
		}
	}
	return m
}

// maxPasses bounds the passes text makes to reach a fixpoint.
const maxPasses = 4

// text masks every address in s. It returns s itself and false when
// nothing changed, so unchanged strings cost no allocation.
//
// A single left-to-right pass decides each address with the text around
// it as it was; masking one address can change what its neighbour looks
// like (an email's local part may now run into a masked IP, a domain may
// now end in a label with letters). When a replacement touched anything
// but a plain delimiter, text repeats the pass on its own output until
// nothing changes, so that masking is idempotent: masking a masked string
// changes nothing.
func (m *masker) text(s string) (string, bool) {
	m.boxed = nil
	i := m.firstTrigger(s)
	if i == len(s) {
		return s, false
	}
	if len(s) <= maxWhole && m.seen[wholeKey(s)] {
		// A value that is one address (source.ip, user.email) is most
		// often one seen before: answer it from the memo.
		if mm, ok := m.cache[s]; ok {
			if mm.s == s {
				return s, false
			}
			m.count(mm.kind)
			m.boxed = mm.v
			return mm.s, true
		}
	}
	out, changed := m.pass(s, i)
	if !changed {
		return s, false
	}
	if m.nrep == 1 && m.firstStart == 0 && m.firstEnd == len(s) {
		m.boxed = m.firstBoxed
	}
	for n := 1; m.touching; n++ {
		if n == maxPasses {
			// Text built to keep forming new addresses out of masked ones
			// (hex soup such as 0000000:1::0000:1::): mask every run that
			// still holds an address as a whole, with the redact tokens,
			// which form nothing.
			out = m.scorched(out)
			break
		}
		next, again := m.pass(out, m.firstTrigger(out))
		if !again {
			break
		}
		out = next
	}
	return out, true
}

// scorched masks s with whole-run redaction until it is stable.
func (m *masker) scorched(s string) string {
	m.scorch = true
	defer func() { m.scorch = false }()
	for range maxPasses {
		next, again := m.pass(s, m.firstTrigger(s))
		if !again {
			break
		}
		s = next
	}
	return s
}

var (
	redactedIPBoxed    any = RedactedIP
	redactedEmailBoxed any = RedactedEmail
)

// maxWhole is the longest string looked up whole in the memo.
const maxWhole = 80

// wholeSlots is the size of the memo's filter, keyed by wholeKey.
const wholeSlots = 1 << 12

// wholeKey is a cheap digest of a non-empty string for the memo filter:
// its length and its first, middle and last bytes.
func wholeKey(s string) int {
	n := len(s)
	return (n*131 + int(s[0])*31 + int(s[n/2])*7 + int(s[n-1])) & (wholeSlots - 1)
}

// firstTrigger returns the index of the first byte that may start an
// address, or len(s).
func (m *masker) firstTrigger(s string) int {
	i := 0
	for i < len(s) && !m.trig[s[i]] {
		i++
	}
	return i
}

func (m *masker) count(kind uint8) {
	if kind == kindIP {
		m.ips++
	} else {
		m.emails++
	}
}

// value is text for a document value: the result comes boxed, without an
// allocation when it is a remembered replacement of the whole string.
func (m *masker) value(s string) (any, bool) {
	out, ok := m.text(s)
	if !ok {
		return nil, false
	}
	if m.boxed != nil {
		return m.boxed, true
	}
	return out, true
}

// pass makes one scanning pass over s from its first trigger i.
func (m *masker) pass(s string, i int) (string, bool) {
	if i == len(s) {
		return s, false
	}
	m.s, m.out, m.last, m.nrep, m.touching = s, m.out[:0], 0, 0, false
	m.scan(i)
	m.s = ""
	switch {
	case m.nrep == 0:
		return s, false
	case m.nrep == 1 && m.firstStart == 0 && m.firstEnd == len(s):
		return m.firstRepl, true
	}
	m.out = append(m.out, s[m.last:]...)
	res := string(m.out)
	if cap(m.out) > 1<<20 {
		m.out = nil
	}
	return res, true
}

// replace substitutes s[start:end] by repl; start >= m.last.
func (m *masker) replace(start, end int, repl string, boxed any) {
	if m.nrep == 0 {
		m.firstStart, m.firstEnd, m.firstRepl, m.firstBoxed = start, end, repl, boxed
	}
	m.out = append(m.out, m.s[m.last:start]...)
	m.out = append(m.out, repl...)
	m.last = end
	m.nrep++
	if (start > 0 && class[m.s[start-1]] != 0) || (end < len(m.s) && class[m.s[end]] != 0) {
		m.touching = true
	}
}

func (m *masker) scan(i int) {
	s := m.s
	for i < len(s) {
		c := s[i]
		if !m.trig[c] {
			i++
			continue
		}
		switch {
		case c == '@':
			i = m.email(i, i+1)
		case c == '\\':
			k := i
			for k < len(s) && s[k] == '\\' {
				k++
			}
			if m.emailMode != modeKeep && k+5 <= len(s) && s[k] == 'u' && s[k+1] == '0' && s[k+2] == '0' &&
				s[k+3] == '4' && s[k+4] == '0' {
				i = m.email(i, k+5)
			} else {
				i = k
			}
		case c == '%':
			switch {
			case m.emailMode != modeKeep && i+2 < len(s) && s[i+1] == '4' && s[i+2] == '0':
				i = m.email(i, i+3)
			case m.emailMode != modeKeep && i+4 < len(s) && s[i+1] == '2' && s[i+2] == '5' && s[i+3] == '4' && s[i+4] == '0':
				i = m.email(i, i+5)
			case m.ipMode != modeKeep && isEncColon(s, i):
				i = m.ipRun(i)
			default:
				i++
			}
		default: // digit or ':'
			// Most digit runs (dates, counters, ids) hold neither three
			// dots nor two colons: skip them without further analysis.
			// Times ("09:26:53.589") have colons but neither "::" nor the
			// six colons that ipRun needs for an IPv6 reading.
			j, dots, colons, dbl, prev := i, 0, 0, false, -1
			for j < len(s) {
				switch c := s[j]; {
				case class[c]&cHexDigit != 0:
				case c == '.':
					dots++
				case c == ':':
					colons++
					dbl = dbl || prev == j
					prev = j + 1
				case c == '%' && isEncColon(s, j):
					colons++
					dbl = dbl || prev == j
					j += 2
					prev = j + 1
				default:
					goto runEnd
				}
				j++
			}
		runEnd:
			if dots < 3 && colons < 6 && !dbl {
				i = j
				continue
			}
			i = m.ipRun(i)
		}
	}
}

// ipRun analyses the run of IP characters around s[i] (hex digits, '.',
// ':' and "%3A") and replaces the addresses in it. It returns the run end.
func (m *masker) ipRun(i int) int {
	s := m.s
	start := i
	for start > m.last && isHex(s[start-1]) && !isDigit(s[start-1]) {
		start--
	}
	end, colons, dots, enc := i, 0, 0, false
	for end < len(s) {
		c := s[end]
		switch {
		case isHex(c):
			end++
		case c == ':':
			colons++
			end++
		case c == '.':
			dots++
			end++
		case c == '%' && isEncColon(s, end):
			colons++
			enc = true
			end += 3
		default:
			goto done
		}
	}
done:
	if colons < 2 && dots < 3 {
		return end
	}
	// The run text, with "%3A" decoded when present; idx maps run offsets
	// back to s.
	r := s[start:end]
	if enc {
		m.scratch, m.idx = m.scratch[:0], m.idx[:0]
		for k := start; k < end; {
			m.idx = append(m.idx, k)
			if isEncColon(s, k) {
				m.scratch = append(m.scratch, ':')
				k += 3
			} else {
				m.scratch = append(m.scratch, s[k])
				k++
			}
		}
		m.idx = append(m.idx, end)
		r = string(m.scratch)
	}
	// A textual IPv6 address has "::" or at least six colons.
	v6, v4 := colons >= 6 || (colons >= 2 && strings.Contains(r, "::")), dots >= 3
	if !v6 && !v4 {
		return end
	}
	pos := func(k int) int {
		if enc {
			return m.idx[k]
		}
		return start + k
	}
	rn := run{r: r, v4: v4, v6: v6, before: ' ', after: ' '}
	if start > 0 {
		rn.before = s[start-1]
	}
	if end < len(s) {
		rn.after = s[end]
	}
	m.segs = rn.init(m.segs)

	// Escape guards: hex digits that belong to a preceding \uXXXX or %XX
	// escape, or to one of our own pseudonyms, are not part of an address.
	minStart, strict := 0, false
	switch {
	case start >= 3 && s[start-3:start] == ipHashPrefix && hexPrefixLen(r) >= hashHexLen:
		minStart, strict = hashHexLen, true
	case start >= 5 && s[start-5:start] == emailHashPrefix && hexPrefixLen(r) >= hashHexLen:
		minStart, strict = hashHexLen, true
	case start >= 2 && s[start-1] == 'u' && s[start-2] == '\\' && hexPrefixLen(r) >= 4:
		minStart = 4
	case start >= 1 && s[start-1] == '%' && hexPrefixLen(r) >= 2:
		minStart = 2
	}

	if m.scorch {
		if _, ok := rn.findIP(0, false); ok {
			m.ips++
			m.replace(start, end, RedactedIP, redactedIPBoxed)
		}
		return end
	}
	p := minStart
	if minStart > 0 && !strict {
		// Prefer the guarded reading, but never let the guard hide an
		// address that only the unguarded reading finds.
		if mu, ok := rn.findIP(0, false); ok && mu.start < minStart {
			if mg, okg := rn.findIP(minStart, true); !okg || mg.start >= mu.end {
				m.emitIP(r, mu, pos, enc)
				p = mu.end
			}
		}
	}
	exempt := p == minStart && minStart > 0
	for p < len(r) {
		mt, ok := rn.findIP(p, exempt)
		if !ok {
			break
		}
		m.emitIP(r, mt, pos, enc)
		p, exempt = mt.end, false
	}
	if m.last > end {
		return m.last // a zone id extended the match past the run
	}
	return end
}

func hexPrefixLen(r string) int {
	n := 0
	for n < len(r) && isHex(r[n]) {
		n++
	}
	return n
}

// emitIP replaces one address found in a run, with its zone id if any.
func (m *masker) emitIP(r string, mt ipMatch, pos func(int) int, enc bool) {
	s := m.s
	a, b := pos(mt.start), pos(mt.end)
	token := s[a:b]
	if mt.addr.Is6() {
		b = zoneEnd(s, b)
	}
	mm, ok := m.cache[token]
	if !ok {
		repl := m.ipRepl(mt.addr)
		if enc && m.ipMode == modeTruncate && (strings.Contains(token, "%3A") || strings.Contains(token, "%3a")) {
			// written with percent-encoded colons: answer in kind
			repl = strings.ReplaceAll(repl, ":", "%3A")
		}
		mm = m.remember(token, repl, kindIP)
	}
	if mm.s == s[a:b] {
		return
	}
	if m.ipMode == modeRedact && a-1 >= m.last && s[a-1] == '[' && b < len(s) && s[b] == ']' {
		a, b = a-1, b+1 // "[2001:db8::1]:443" → "[REDACTED_IP]:443"
	}
	m.ips++
	m.replace(a, b, mm.s, mm.v)
}

// zoneEnd extends an IPv6 address ending at s[b] over a zone id ("%eth0",
// or "%25eth0" inside URLs).
func zoneEnd(s string, b int) int {
	if b >= len(s) || s[b] != '%' || isEncColon(s, b) {
		return b
	}
	k := b + 1
	if k+1 < len(s) && s[k] == '2' && s[k+1] == '5' {
		k += 2
	}
	if k+1 < len(s) && s[k] == '4' && s[k+1] == '0' {
		return b // an encoded at-sign, not a zone
	}
	z := k
	for z < len(s) && (isWord(s[z]) || s[z] == '.' || s[z] == '-' || s[z] == '~') {
		z++
	}
	if z == k {
		return b
	}
	return z
}

// memo is a remembered replacement, also boxed in an interface so that
// storing it in a document costs no allocation.
type memo struct {
	s    string
	v    any
	kind uint8
}

const (
	kindIP uint8 = iota
	kindEmail
)

func (m *masker) remember(k, v string, kind uint8) memo {
	if len(m.cache) >= maxCache {
		clear(m.cache)
		clear(m.seen[:])
	}
	if k != "" {
		m.seen[wholeKey(k)] = true
	}
	mm := memo{s: v, v: v, kind: kind}
	m.cache[strings.Clone(k)] = mm
	return mm
}

// ipRepl computes the masked form of one address.
func (m *masker) ipRepl(a netip.Addr) string {
	switch m.ipMode {
	case modeTruncate:
		a = a.WithZone("")
		if a.Is4In6() {
			v4 := a.Unmap()
			p, _ := v4.Prefix(m.v4bits)
			return netip.AddrFrom16(p.Addr().As16()).String()
		}
		bits := m.v6bits
		if a.Is4() {
			bits = m.v4bits
		}
		p, _ := a.Prefix(bits)
		return p.Addr().String()
	case modeHash:
		canon := a.Unmap().WithZone("")
		var buf [16]byte
		var raw []byte
		if canon.Is4() {
			b4 := canon.As4()
			raw = append(buf[:0], b4[:]...)
		} else {
			b16 := canon.As16()
			raw = append(buf[:0], b16[:]...)
		}
		return m.pseudonym(ipHashPrefix, 'i', raw, "")
	default:
		return RedactedIP
	}
}

// pseudonym returns prefix + hex(HMAC(key, kind 0 data)[:8]) + suffix.
func (m *masker) pseudonym(prefix string, kind byte, data []byte, suffix string) string {
	m.mac.Reset()
	m.mac.Write([]byte{kind, 0})
	m.mac.Write(data)
	m.sum = m.mac.Sum(m.sum[:0])
	out := make([]byte, 0, len(prefix)+hashHexLen+len(suffix))
	out = append(out, prefix...)
	out = hex.AppendEncode(out, m.sum[:hashHexLen/2])
	out = append(out, suffix...)
	return string(out)
}

// email examines the at-sign at s[a:b] ('@', a \u0040 escape, %40 or
// %2540) and replaces the address around it. It returns where to resume.
func (m *masker) email(a, b int) int {
	s := m.s
	// Local part: walk left over local characters and escape units, then
	// tokenise forwards so that escape sequences are read as units.
	ls, floor := a, max(m.last, a-maxLocalSpan)
	for ls > floor && isSpan(s[ls-1]) {
		ls--
		// stop at a previous at-sign spelt %40 or \u0040
		if s[ls] == '%' && ls+2 < a && s[ls+1] == '4' && s[ls+2] == '0' {
			ls += 3
			break
		}
		if s[ls] == '\\' && ls+5 < a && s[ls+1] == 'u' && s[ls+2:ls+6] == "0040" {
			ls += 6
			break
		}
	}
	// A span that runs past the limit is text glued in front of the
	// address: the local part is then its ASCII tail.
	capped := ls == floor && floor > m.last && isSpan(s[floor-1])
	seg := ls
	for j := ls; j < a; {
		r, n, ok := nextUnit(s, j, a)
		j += n
		if !ok || (r < utf8.RuneSelf && class[r]&cLocal == 0) {
			seg = j // an escape (\n, \", %20 ...) that is not part of an address
		}
	}
	if capped {
		for j := seg; j < a; {
			r, n, _ := nextUnit(s, j, a)
			j += n
			if r >= utf8.RuneSelf {
				seg = j
			}
		}
		if seg == floor {
			return b // longer than any address: not one
		}
	}
	for seg < a && s[seg] == '.' {
		seg++
	}
	if seg == a {
		return b
	}
	// Domain: labels of letters, digits, '-' (and non-ASCII), dot-separated,
	// whose last label holds a letter.
	de := domainEnd(s, b)
	if de < 0 {
		return b
	}
	local := s[seg:a]
	switch m.emailMode {
	case modePartial:
		if isPartial(local) {
			return de
		}
	case modeHash:
		if isEmailPseudonym(local) {
			return de
		}
	}
	if m.scorch {
		m.emails++
		m.replace(seg, de, RedactedEmail, redactedEmailBoxed)
		return de
	}
	digits := false
	for k := b; k < de; k++ {
		if isDigit(s[k]) {
			digits = true
			break
		}
	}
	if m.emailMode != modeRedact && digits {
		// Keep the domain in the text stream so an address-like label
		// (10.0.0.1.nip.io) still meets the IP scanner.
		repl := m.localRepl(local, s[b:de])
		m.emails++
		m.replace(seg, a, repl, nil)
		return b
	}
	token := s[seg:de]
	mm, ok := m.cache[token]
	if !ok {
		repl := RedactedEmail
		if m.emailMode != modeRedact {
			repl = m.localRepl(local, s[b:de]) + s[a:de]
		}
		mm = m.remember(token, repl, kindEmail)
	}
	m.emails++
	m.replace(seg, de, mm.s, mm.v)
	return de
}

func isSpan(c byte) bool { return class[c]&cLocal != 0 || c == '\\' || c == '%' }

// nextUnit reads one character of a local part at s[j:] (before limit): a
// byte, a UTF-8 rune, a \uXXXX escape (behind any number of backslashes)
// or a %XX escape, and returns its value and length. ok is false for any
// other escape sequence.
func nextUnit(s string, j, limit int) (r rune, n int, ok bool) {
	switch c := s[j]; {
	case c == '\\':
		k := j
		for k < limit && s[k] == '\\' {
			k++
		}
		if k+5 <= limit && s[k] == 'u' && isHex(s[k+1]) && isHex(s[k+2]) && isHex(s[k+3]) && isHex(s[k+4]) {
			r = rune(unhex(s[k+1]))<<12 | rune(unhex(s[k+2]))<<8 | rune(unhex(s[k+3]))<<4 | rune(unhex(s[k+4]))
			return r, k + 5 - j, true
		}
		return 0, min(k+1, limit) - j, false
	case c == '%':
		if j+3 <= limit && isHex(s[j+1]) && isHex(s[j+2]) {
			return rune(unhex(s[j+1])<<4 | unhex(s[j+2])), 3, true
		}
		return 0, 1, false
	case c >= utf8.RuneSelf:
		r, n = utf8.DecodeRuneInString(s[j:limit])
		return r, n, true
	}
	return rune(s[j]), 1, true
}

// localRepl masks an email's local part (partial or hash mode).
func (m *masker) localRepl(local, domain string) string {
	if m.emailMode == modeHash {
		canon := make([]byte, 0, len(local)+len(domain)+1)
		canon = appendDecodedLower(canon, local)
		canon = append(canon, '@')
		canon = appendDecodedLower(canon, domain)
		return m.pseudonym(emailHashPrefix, 'e', canon, "")
	}
	return local[:firstUnit(local)] + "***"
}

// firstUnit returns the length of the first character of a local part:
// one byte, one UTF-8 rune, or one escape unit (\u00e9, %2B).
func firstUnit(local string) int {
	switch c := local[0]; {
	case c == '\\':
		k := 0
		for k < len(local) && local[k] == '\\' {
			k++
		}
		return min(k+5, len(local))
	case c == '%':
		return min(3, len(local))
	case c >= utf8.RuneSelf:
		_, n := utf8.DecodeRuneInString(local)
		return n
	}
	return 1
}

// isPartial reports whether local is already a partial mask: one unit
// followed only by '*'.
func isPartial(local string) bool {
	n := firstUnit(local)
	if n == len(local) {
		return false
	}
	for k := n; k < len(local); k++ {
		if local[k] != '*' {
			return false
		}
	}
	return true
}

func isEmailPseudonym(local string) bool {
	if len(local) != len(emailHashPrefix)+hashHexLen || !strings.HasPrefix(local, emailHashPrefix) {
		return false
	}
	for k := len(emailHashPrefix); k < len(local); k++ {
		c := local[k]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// domainEnd returns the end of the longest email domain starting at s[b]:
// at least two non-empty labels of letters, digits, '-' or non-ASCII,
// the last of which holds a letter; -1 when there is none.
func domainEnd(s string, b int) int {
	best, labels, letter := -1, 0, false
	start := b
	lim := min(len(s), b+maxDomainSpan)
	for i := b; ; i++ {
		if i < lim && class[s[i]]&cDomain != 0 && s[i] != '.' {
			if c := s[i]; c >= utf8.RuneSelf || (c|0x20 >= 'a' && c|0x20 <= 'z') {
				letter = true
			}
			continue
		}
		// a label ends at i
		if i == start || s[start] == '-' {
			break
		}
		labels++
		end := i
		for end > start && s[end-1] == '-' {
			end--
		}
		if labels >= 2 && letter && end > start {
			best = end
		}
		if end < i || i >= lim || s[i] != '.' {
			break
		}
		start, letter = i+1, false
	}
	return best
}

// appendDecodedLower appends t with \uXXXX and %XX units decoded and ASCII
// letters lower-cased: the canonical form a pseudonym is computed from.
func appendDecodedLower(dst []byte, t string) []byte {
	for j := 0; j < len(t); {
		c := t[j]
		switch {
		case c == '\\':
			k := j
			for k < len(t) && t[k] == '\\' {
				k++
			}
			if k+5 <= len(t) && t[k] == 'u' {
				r := rune(unhex(t[k+1]))<<12 | rune(unhex(t[k+2]))<<8 | rune(unhex(t[k+3]))<<4 | rune(unhex(t[k+4]))
				if r >= 'A' && r <= 'Z' {
					r += 'a' - 'A'
				}
				dst = utf8.AppendRune(dst, r)
				j = k + 5
				continue
			}
			dst = append(dst, t[j:k]...)
			j = k
		case c == '%' && j+2 < len(t) && isHex(t[j+1]) && isHex(t[j+2]):
			d := unhex(t[j+1])<<4 | unhex(t[j+2])
			if d >= 'A' && d <= 'Z' {
				d += 'a' - 'A'
			}
			dst = append(dst, d)
			j += 3
		default:
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			j++
		}
	}
	return dst
}
