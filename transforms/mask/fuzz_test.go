package mask

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

// obj is an ordered object of the generator (maps would make runs
// irreproducible).
type obj []kv

type kv struct {
	k string
	v any
}

// gen builds random JSON documents with addresses planted at random places.
type gen struct {
	r       *rand.Rand
	filler  string
	needles []string // canonical spelling of each planted address (normalize()d)
	cfg     *Config
	slots   []*string // string values an address may be planted into
}

const fillerAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789 .,:;-_/=?&#()<>[]{}\"'\\\t\n가나다é*%+@"

func (g *gen) text(n int) string {
	var b strings.Builder
	for range n {
		if g.filler != "" && g.r.IntN(8) == 0 {
			b.WriteString(g.filler)
			continue
		}
		b.WriteString(string([]rune(fillerAlphabet)[g.r.IntN(len([]rune(fillerAlphabet)))]))
	}
	return b.String()
}

func (g *gen) value(depth int) any {
	switch k := g.r.IntN(10); {
	case depth > 3 || k < 5:
		s := g.text(g.r.IntN(24))
		return &s
	case k < 7:
		var o obj
		for range g.r.IntN(5) {
			o = append(o, kv{g.text(1 + g.r.IntN(8)), g.value(depth + 1)})
		}
		return o
	case k < 9:
		a := make([]any, g.r.IntN(4))
		for i := range a {
			a[i] = g.value(depth + 1)
		}
		return a
	default:
		return []any{float64(g.r.IntN(1000)), g.r.IntN(2) == 0, nil}
	}
}

// collect finds the string slots of a value tree.
func (g *gen) collect(v any) {
	switch t := v.(type) {
	case *string:
		g.slots = append(g.slots, t)
	case obj:
		for _, e := range t {
			g.collect(e.v)
		}
	case []any:
		for _, e := range t {
			g.collect(e)
		}
	}
}

// build turns the tree into an *Object; nodes marked for it become JSON
// text inside a string (optionally with '@' written as \u0040, as other
// encoders do), which nests JSON-in-string to depth 2 and beyond.
func (g *gen) build(v any, depth int) any {
	switch t := v.(type) {
	case *string:
		return *t
	case obj:
		o := plugins.NewObject(len(t))
		for _, e := range t {
			o.SetKey(e.k, g.build(e.v, depth+1))
		}
		if depth > 0 && g.r.IntN(3) == 0 {
			return g.encode(o)
		}
		return o
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = g.build(e, depth+1)
		}
		if depth > 0 && g.r.IntN(4) == 0 {
			return g.encode(a)
		}
		return a
	}
	return v
}

func (g *gen) encode(v any) string {
	s := string(plugins.AppendJSONValue(nil, v))
	if g.r.IntN(3) == 0 {
		s = strings.ReplaceAll(s, "@", `\u0040`)
	}
	return s
}

var delims = []string{" ", ", ", "\"", "'", "(", ")", "<", ">", "/", "=", ";", "\n", "\t", "가", "|", "[", "]", " at "}

func (g *gen) delim() string { return delims[g.r.IntN(len(delims))] }

func (g *gen) randIPv4() (string, netip.Addr) {
	var b [4]byte
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	a := netip.AddrFrom4(b)
	return a.String(), a
}

func (g *gen) address() string {
	switch g.r.IntN(10) {
	case 0, 1, 2: // IPv4, maybe with a port
		s, a := g.randIPv4()
		g.plantIP(s, a)
		if g.r.IntN(3) == 0 {
			return s + fmt.Sprintf(":%d", g.r.IntN(65536))
		}
		return s
	case 3, 4: // IPv6 in one of its spellings
		var b [16]byte
		for i := range b {
			b[i] = byte(g.r.IntN(256))
		}
		if g.r.IntN(2) == 0 {
			for i := 8 + g.r.IntN(6); i < 14; i++ {
				b[i] = 0 // a run of zero groups to compress
			}
		}
		a := netip.AddrFrom16(b)
		s := a.String()
		switch g.r.IntN(5) {
		case 0:
			s = a.StringExpanded()
		case 1:
			s = strings.ToUpper(s)
		}
		g.plantIP(s, a)
		switch g.r.IntN(5) {
		case 0:
			return "[" + s + "]:" + fmt.Sprint(g.r.IntN(65536))
		case 1:
			return s + "%eth" + fmt.Sprint(g.r.IntN(4))
		case 2:
			return strings.ReplaceAll(s, ":", "%3A")
		}
		return s
	case 5: // IPv4-mapped IPv6
		s, a := g.randIPv4()
		m := "::ffff:" + s
		g.plantIP(m, netip.AddrFrom16(a.As16()))
		g.plantIP(s, a)
		return m
	default: // email
		const lc = "abcdefghijklmnopqrstuvwxyz0123456789._+-"
		var l strings.Builder
		l.WriteByte("ghjkmnpqvwxyz"[g.r.IntN(13)]) // a non-hex letter first, so no pseudonym can end with it
		for range 3 + g.r.IntN(10) {
			l.WriteByte(lc[g.r.IntN(len(lc))])
		}
		l.WriteByte("ghjkmnpqvwxyz"[g.r.IntN(13)])
		local := l.String()
		if g.r.IntN(3) == 0 {
			local = strings.ToUpper(local)
		}
		dom := []string{"navercorp.com", "nhn.com", "example.co.kr", "mail.example.org", "EXAMPLE.JP"}[g.r.IntN(5)]
		g.needles = append(g.needles, local+"@"+dom)
		at := []string{"@", "@", "@", `\u0040`, "%40", "%2540"}[g.r.IntN(6)]
		return local + at + dom
	}
}

// plantIP records an address unless the policy legitimately keeps its text.
func (g *gen) plantIP(s string, a netip.Addr) {
	switch g.cfg.IP.Mode {
	case ModeKeep:
		return
	case ModeTruncate:
		bits := g.cfg.IP.IPv6Prefix
		if a.Is4() {
			bits = g.cfg.IP.IPv4Prefix
		}
		if a.Is4In6() {
			a, bits = a.Unmap(), g.cfg.IP.IPv4Prefix
		}
		if p, _ := a.Prefix(bits); p.Addr() == a {
			return // already its own truncation
		}
	}
	g.needles = append(g.needles, strings.ReplaceAll(s, "%3A", ":"))
}

func fuzzPolicy(n uint8) *Config {
	ips := []string{ModeTruncate, ModeHash, ModeRedact, ModeTruncate}
	ems := []string{ModePartial, ModeHash, ModeRedact, ModePartial}
	c := cfgFor(ips[n%4], ems[(n/4)%4])
	if n&16 != 0 {
		c.IP.IPv4Prefix, c.IP.IPv6Prefix = 16, 64
	}
	return c
}

func FuzzMask(f *testing.F) {
	f.Add(uint64(1), uint8(0), "")
	f.Add(uint64(2), uint8(5), "10:31:49.348")
	f.Add(uint64(3), uint8(10), `\u00`)
	f.Add(uint64(4), uint8(3), "%3")
	f.Add(uint64(5), uint8(17), "::")
	f.Add(uint64(6), uint8(6), "fe80")
	f.Add(uint64(7), uint8(9), "a@b.c")
	f.Add(uint64(8), uint8(12), "1.2.3")
	f.Add(uint64(9), uint8(1), "***.***.***.***")
	f.Add(uint64(10), uint8(2), `\\\"`)
	f.Add(uint64(11), uint8(7), "ip-0123456789abcdef")
	f.Fuzz(fuzzOne)
}

func fuzzOne(t *testing.T, seed uint64, pol uint8, filler string) {
	{
		if len(filler) > 512 {
			filler = filler[:512] // it is spliced in many times
		}
		cfg := fuzzPolicy(pol)
		g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), filler: filler, cfg: cfg}

		// Arbitrary text: no panic, idempotent.
		tr := newT(t, cfg)
		once, _ := tr.m.text(filler)
		if twice, _ := tr.m.text(once); twice != once {
			t.Fatalf("text not idempotent:\n%s", diffContext(once, twice))
		}

		var root obj
		for range 1 + g.r.IntN(6) {
			root = append(root, kv{g.text(1 + g.r.IntN(6)), g.value(0)})
		}
		g.collect(root)
		if len(g.slots) == 0 {
			return
		}
		for range 1 + g.r.IntN(8) {
			slot := g.slots[g.r.IntN(len(g.slots))]
			rs := []rune(*slot)
			at := g.r.IntN(len(rs) + 1)
			*slot = string(rs[:at]) + g.delim() + g.address() + g.delim() + string(rs[at:])
		}
		doc := g.build(root, 0).(*plugins.Object)
		// Keep only needles the document really holds (a later plant can
		// split an earlier one).
		needles := textsOf(doc).holding(g.needles)
		out := tr.Document(doc.Clone())
		if s := normalizedSurvivors(out, needles); len(s) > 0 {
			t.Fatalf("policy %s/%s: survived %v\n%s", cfg.IP.Mode, cfg.Email.Mode, s, around(string(out.AppendJSON(nil)), s[0]))
		}
		raw := out.AppendJSON(nil)
		if _, err := plugins.ParseObject(raw); err != nil {
			t.Fatalf("masked document is not valid JSON: %v", err)
		}
		again := tr.Document(out.Clone()).AppendJSON(nil)
		if string(again) != string(raw) {
			t.Fatalf("not idempotent:\n%s", diffContext(string(raw), string(again)))
		}
	}
}

// diffContext shows where two strings first differ.
func diffContext(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-300)
	return fmt.Sprintf("once:  …%q…\ntwice: …%q…", a[lo:min(len(a), i+100)], b[lo:min(len(b), i+100)])
}

// around shows the text around the first occurrence of a needle.
func around(s, needle string) string {
	n := normalize(s)
	i := strings.Index(n, strings.TrimSuffix(needle, " (unescaped)"))
	if i < 0 {
		if len(s) > 3000 {
			return s[:3000] + "…"
		}
		return s
	}
	return fmt.Sprintf("…%q…", n[max(0, i-300):min(len(n), i+len(needle)+100)])
}
