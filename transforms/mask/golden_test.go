package mask

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the current output")

// policies are the masking policies every golden document is checked under.
var policies = []struct {
	name string
	cfg  func() *Config
}{
	{"default", DefaultConfig},
	{"hash", func() *Config { return cfgFor(ModeHash, ModeHash) }},
	{"redact", func() *Config { return cfgFor(ModeRedact, ModeRedact) }},
}

// A reference extractor, deliberately written differently from the
// scanner (regular expressions + net/netip), finds the addresses a
// document holds; the masked document must hold none of them.
var (
	reIPv4  = regexp.MustCompile(`(?:^|[^0-9.])((?:[0-9]{1,3}\.){3}[0-9]{1,3})(?:$|[^0-9])`)
	reIPv6  = regexp.MustCompile(`[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*`)
	reEmail = regexp.MustCompile(`[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)
	reAtEsc = regexp.MustCompile(`\\+u0040|%(?:25)?40`)
	reColon = regexp.MustCompile(`%3[Aa]`)
)

// normalize rewrites the escaped spellings of '@' and ':' so that the
// reference extractor sees them.
func normalize(s string) string {
	if !strings.ContainsAny(s, `\%`) {
		return s
	}
	return reColon.ReplaceAllString(reAtEsc.ReplaceAllString(s, "@"), ":")
}

type needle struct {
	text string
	ip   netip.Addr // valid for IPs
}

func extract(s string, out map[string]needle) {
	s = normalize(s)
	for _, m := range reIPv4.FindAllStringSubmatch(s, -1) {
		var oct [4]byte
		ok := true
		for i, p := range strings.Split(m[1], ".") {
			v := 0
			for _, c := range p {
				v = v*10 + int(c-'0')
			}
			if v > 255 {
				ok = false
			}
			oct[i] = byte(v)
		}
		if ok {
			out[m[1]] = needle{text: m[1], ip: netip.AddrFrom4(oct)}
		}
	}
	for _, tok := range reIPv6.FindAllString(s, -1) {
		tok = strings.Trim(tok, ":.")
		for _, cand := range []string{tok, tok[:max(0, strings.LastIndexByte(tok, ':'))]} {
			if a, err := netip.ParseAddr(cand); err == nil && a.Is6() && !a.IsUnspecified() && strings.Count(cand, ":") >= 2 {
				out[cand] = needle{text: cand, ip: a}
				break
			}
		}
	}
	for _, e := range reEmail.FindAllString(s, -1) {
		out[e] = needle{text: e}
	}
}

// needlesOf returns the addresses in the given JSON files, at every depth.
func needlesOf(t *testing.T, files ...string) map[string]needle {
	out := map[string]needle{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		extract(string(data), out)
		v, err := plugins.ParseValue(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		visitStrings(v, func(s string) { extract(s, out) })
	}
	return out
}

// mustVanish lists the needles the policy must remove: everything, except
// in truncate mode an address that is its own truncation (10.0.1.0 of a
// /24 subnet) and in partial mode nothing is exempt.
func mustVanish(needles map[string]needle, cfg *Config) []string {
	var out []string
	for _, n := range needles {
		if n.ip.IsValid() {
			if cfg.IP.Mode == ModeKeep {
				continue
			}
			if cfg.IP.Mode == ModeTruncate {
				a, bits := n.ip, cfg.IP.IPv6Prefix
				if a.Is4() {
					bits = cfg.IP.IPv4Prefix
				}
				if p, _ := a.Prefix(bits); p.Addr().String() == n.text {
					continue
				}
			}
		} else if cfg.Email.Mode == ModeKeep {
			continue
		}
		out = append(out, n.text)
	}
	return out
}

// texts is a document's normalized raw JSON and every string in it,
// unescaped at every depth of JSON-in-string.
type texts []string

func textsOf(doc *plugins.Object) texts {
	out := texts{normalize(string(doc.AppendJSON(nil)))}
	visitStrings(doc, func(s string) { out = append(out, normalize(s)) })
	return out
}

// holding returns the needles found in any of the texts.
func (ts texts) holding(needles []string) []string {
	var out []string
	for _, n := range needles {
		for _, s := range ts {
			if strings.Contains(s, n) {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// normalizedSurvivors returns the needles doc still holds.
func normalizedSurvivors(doc *plugins.Object, needles []string) []string {
	return textsOf(doc).holding(needles)
}

func checkMasked(t *testing.T, name string, files []string, doc []byte, golden string) {
	needles := needlesOf(t, files...)
	for _, pol := range policies {
		t.Run(pol.name, func(t *testing.T) {
			cfg := pol.cfg()
			orig, err := plugins.ParseObject(doc)
			if err != nil {
				t.Fatal(err)
			}
			vanish := mustVanish(needles, cfg)
			// The check must be able to fail: the unmasked document
			// holds the addresses it names.
			if len(vanish) > 0 && len(normalizedSurvivors(orig, vanish)) == 0 {
				t.Fatalf("reference extractor found %v but none is in the unmasked document", vanish)
			}
			tr := newT(t, cfg)
			out := tr.Document(orig.Clone())
			if s := normalizedSurvivors(out, vanish); len(s) > 0 {
				t.Errorf("addresses survived masking: %v\n%s", s, out.AppendJSON(nil))
			}
			stars := strings.Count(string(doc), "***.***.***.***")
			if got := strings.Count(string(out.AppendJSON(nil)), "***.***.***.***"); got < stars {
				t.Errorf("NCP's ***.***.***.*** altered (%d → %d)", stars, got)
			}
			checkIPFields(t, orig, out, cfg)
			assertIdempotent(t, tr, out)
			if golden != "" {
				compareGolden(t, filepath.Join("testdata", "golden", name+"."+pol.name+".json"), out)
			}
		})
	}
}

// checkIPFields asserts the ECS ip-field contract.
func checkIPFields(t *testing.T, orig, out *plugins.Object, cfg *Config) {
	t.Helper()
	for _, f := range IPFields {
		before, had := orig.Get(f)
		after, has := out.Get(f)
		moved, hasMoved := out.Get(f + MaskedSuffix)
		if !had {
			continue
		}
		allIPs := true
		forEachString(before, func(s string) {
			if _, err := netip.ParseAddr(s); err != nil {
				allIPs = false
			}
		})
		if !allIPs {
			continue
		}
		switch cfg.IP.Mode {
		case ModeTruncate, ModeKeep:
			if !has || hasMoved {
				t.Errorf("%s: want it in place, got %v / %s%s=%v", f, after, f, MaskedSuffix, moved)
			}
			forEachString(after, func(s string) {
				if _, err := netip.ParseAddr(s); err != nil {
					t.Errorf("%s = %q: not a valid IP", f, s)
				}
			})
		default:
			if has || !hasMoved {
				t.Errorf("%s: want it moved to %s%s, got %v / %v", f, f, MaskedSuffix, after, moved)
			}
			if isArrayVal(before) != isArrayVal(moved) {
				t.Errorf("%s%s: array-ness changed", f, MaskedSuffix)
			}
		}
	}
}

func compareGolden(t *testing.T, path string, doc *plugins.Object) {
	t.Helper()
	got := indentJSON(doc.AppendJSON(nil))
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale or the output changed (go test -run Golden -update rewrites it)\n got %s\nwant %s", path, got, want)
	}
}

func indentJSON(b []byte) []byte {
	var buf bytes.Buffer
	depth, inStr, esc := 0, false, false
	nl := func() {
		buf.WriteByte('\n')
		buf.WriteString(strings.Repeat("  ", depth))
	}
	for i, c := range b {
		if inStr {
			buf.WriteByte(c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
			buf.WriteByte(c)
		case '{', '[':
			buf.WriteByte(c)
			if i+1 < len(b) && (b[i+1] == '}' || b[i+1] == ']') {
				continue
			}
			depth++
			nl()
		case '}', ']':
			if i > 0 && (b[i-1] == '{' || b[i-1] == '[') {
				buf.WriteByte(c)
				continue
			}
			depth--
			nl()
			buf.WriteByte(c)
		case ',':
			buf.WriteByte(c)
			nl()
		case ':':
			buf.WriteString(": ")
		default:
			buf.WriteByte(c)
		}
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// TestGoldenFixtures masks this package's own realistic ECS documents and
// compares with testdata/golden.
func TestGoldenFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) < 3 {
		t.Fatalf("fixtures missing: %v", files)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			checkMasked(t, name, []string{f}, data, name)
		})
	}
}

// TestGoldenECSOutputs masks every golden output of the ecs transform
// (testdata/<dataset>/<case>/expected.json at the repository root) and
// checks that no address of the case's input or expected document survives.
func TestGoldenECSOutputs(t *testing.T) {
	cases, _ := filepath.Glob("../../testdata/*/*/expected.json")
	if len(cases) == 0 {
		t.Fatal("no ecs golden outputs found under ../../testdata/*/*/expected.json")
	}
	total := 0
	for _, exp := range cases {
		dir := filepath.Dir(exp)
		name := filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(exp)
			if err != nil {
				t.Fatal(err)
			}
			files := []string{exp}
			if _, err := os.Stat(filepath.Join(dir, "input.json")); err == nil {
				files = append(files, filepath.Join(dir, "input.json"))
			}
			total += len(needlesOf(t, files...))
			checkMasked(t, name, files, data, "")
		})
	}
	if total < len(cases) {
		t.Errorf("reference extractor found only %d addresses in %d cases", total, len(cases))
	}
}
