package mask

import (
	"strings"
	"testing"
)

const testKey = "test-hash-key-0123456789"

func cfgFor(ipMode, emailMode string) *Config {
	c := DefaultConfig()
	c.IP.Mode, c.Email.Mode = ipMode, emailMode
	c.HashKey = testKey
	return c
}

func TestTextForms(t *testing.T) {
	def := cfgFor(ModeTruncate, ModePartial)
	red := cfgFor(ModeRedact, ModeRedact)
	tests := []struct {
		name string
		cfg  *Config
		in   string
		want string
	}{
		// IPv4
		{"ipv4", def, "203.0.113.77", "203.0.113.0"},
		{"ipv4 in text", def, "login from 203.0.113.77 failed", "login from 203.0.113.0 failed"},
		{"ipv4 with port", def, "dial tcp 1.2.3.4:443: refused", "dial tcp 1.2.3.0:443: refused"},
		{"ipv4 leading zeros", def, "host 010.001.002.003", "host 10.1.2.0"},
		{"ipv4 list", def, "198.51.100.7, 203.0.113.9", "198.51.100.0, 203.0.113.0"},
		{"ipv4 cidr", def, "10.1.2.3/24", "10.1.2.0/24"},
		{"ipv4 in url", def, "http://192.0.2.44:8080/x?ip=192.0.2.45", "http://192.0.2.0:8080/x?ip=192.0.2.0"},
		{"ipv4 glued to letters", def, "ip192.0.2.44end", "ip192.0.2.0end"},
		{"ipv4 in 5-part dotted", def, "1.2.3.4.5", "1.2.3.0.5"},
		{"ipv4 prefix 16", &Config{IP: IPConfig{Mode: ModeTruncate, IPv4Prefix: 16, IPv6Prefix: 48}, Email: EmailConfig{Mode: ModeKeep}}, "203.0.113.77", "203.0.0.0"},
		{"ipv4 after %XX escape", def, "q=%20203.0.113.77", "q=%20203.0.113.0"},
		{"ipv4 after \\u escape", def, `\u00e9203.0.113.77`, `\u00e9203.0.113.0`},
		// IPv6
		{"ipv6", def, "2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::"},
		// The run pre-check in scan: times are skipped, but a run with
		// "::" (literal or encoded) or six colons is still analysed.
		{"time is no address", def, "2026-03-14T09:26:53.589Z", "2026-03-14T09:26:53.589Z"},
		{"ipv6 full form", def, "a 2001:db8:1:2:3:4:5:6 b", "a 2001:db8:1:: b"},
		{"ipv6 double colon first", def, "x=::ffff:1", "x=::"},
		{"ipv6 encoded double colon", def, "ip=2001%3Adb8%3A%3A1", "ip=2001%3Adb8%3A%3A"},
		{"ipv6 colon then encoded colon", def, "ip=2001:db8:%3A1", "ip=2001%3Adb8%3A%3A"},
		{"ipv6 full upper", def, "2001:0DB8:85A3:0000:0000:8A2E:0370:7334", "2001:db8:85a3::"},
		{"ipv6 bracket port", def, "https://[2001:db8:1:2::1]:8443/x", "https://[2001:db8:1::]:8443/x"},
		{"ipv6 compressed", def, "fe80::1 and 2001:db8::42", "fe80:: and 2001:db8::"},
		{"ipv6 mapped", def, "::ffff:198.51.100.23", "::ffff:198.51.100.0"},
		{"ipv6 mapped port", def, "[::ffff:198.51.100.23]:52311", "[::ffff:198.51.100.0]:52311"},
		{"ipv6 zone", def, "fe80::1ff:fe23:4567:890a%eth0 up", "fe80:: up"},
		{"ipv6 zone url", def, "http://[fe80::1ff:fe23:4567:890a%25en0]/", "http://[fe80::]/"},
		{"ipv6 percent-encoded colons", def, "ip=2001%3Adb8%3A1%3A2%3A%3A1&x=1", "ip=2001%3Adb8%3A1%3A%3A&x=1"},
		{"ipv6 plain beside encoded", def, "a=fe80::1:2:3%3A&b=fe80::1:2:3 c=1::", "a=fe80::%3A&b=fe80:: c=1::"},
		{"ipv6 embedded ipv4", def, "64:ff9b::192.0.2.33", "64:ff9b::"},
		{"ipv4 then ipv6 after a dot", def, "x 10.1.2.3.2001:db8:1:2::5 y", "x 10.1.2.0.2001:db8:1:: y"},
		{"ipv6 chain after dots", red, "::1:5.::1:6.::1:7", "[REDACTED_IP].[REDACTED_IP].[REDACTED_IP]"},
		{"ipv6 glued hex", def, "id=ab2001:db8:1:2::9", "id=ab2001:db8:1::"},
		// email
		{"email", def, "honggildong@navercorp.com", "h***@navercorp.com"},
		{"email upper", def, "HONGGILDONG@NAVERCORP.COM", "H***@NAVERCORP.COM"},
		{"email plus", def, "mail hong+audit@navercorp.com.", "mail h***@navercorp.com."},
		{"email json escape", def, `{"u":"hong\u0040navercorp.com"}`, `{"u":"h***\u0040navercorp.com"}`},
		{"email json escape upper hex", def, `hong\u0040navercorp.com`, `h***\u0040navercorp.com`},
		{"email double json escape", def, `{\"u\":\"hong\\u0040navercorp.com\"}`, `{\"u\":\"h***\\u0040navercorp.com\"}`},
		{"email percent", def, "https://x.io/reset?email=hong%40navercorp.com&t=1", "https://x.io/reset?email=h***%40navercorp.com&t=1"},
		{"email percent lower plus", def, "to=hong%2Baudit%40navercorp.com", "to=h***%40navercorp.com"},
		{"email double percent", def, "next=%2Fx%3Femail%3Dhong%2540navercorp.com", "next=%2Fx%3Femail%3Dh***%2540navercorp.com"},
		{"email after json newline escape", def, `line\nhong@navercorp.com`, `line\nh***@navercorp.com`},
		{"email escaped local char", def, `\u00e9ric@navercorp.com`, `\u00e9***@navercorp.com`},
		{"email mailto", def, "mailto:hong@navercorp.com", "mailto:h***@navercorp.com"},
		{"email angle", def, "Hong <hong@navercorp.com>", "Hong <h***@navercorp.com>"},
		{"email korean local", def, "홍길동@navercorp.com", "홍***@navercorp.com"},
		{"email idn domain", def, "hong@네이버.한국", "h***@네이버.한국"},
		{"email in query key=value", def, "userId=hong@navercorp.com", "userId=h***@navercorp.com"},
		{"email with ip domain label", def, "hong@10.0.0.1.nip.io", "h***@10.0.0.0.nip.io"},
		{"ip and email", def, "hong@navercorp.com from 203.0.113.77", "h***@navercorp.com from 203.0.113.0"},
		// redact
		{"redact ip", red, "from 203.0.113.77:443", "from [REDACTED_IP]:443"},
		{"redact bracketed", red, "[2001:db8::1]:443", "[REDACTED_IP]:443"},
		{"redact email", red, "to hong@navercorp.com.", "to [REDACTED_EMAIL]."},
		{"redact escaped email", red, `"hong\u0040navercorp.com"`, `"[REDACTED_EMAIL]"`},
		// keep
		{"keep ip", cfgFor(ModeKeep, ModePartial), "203.0.113.77 hong@x.com", "203.0.113.77 h***@x.com"},
		{"keep email", cfgFor(ModeTruncate, ModeKeep), "203.0.113.77 hong@x.com", "203.0.113.0 hong@x.com"},
		{"keep both", cfgFor(ModeKeep, ModeKeep), "203.0.113.77 hong@x.com", "203.0.113.77 hong@x.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMasker(tt.cfg)
			got, _ := m.text(tt.in)
			if got != tt.want {
				t.Fatalf("text(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			again, changed := m.text(got)
			if changed || again != got {
				t.Fatalf("not idempotent: %q → %q", got, again)
			}
		})
	}
}

// Text that holds no address must come out unchanged (and unallocated).
func TestTextNoFalsePositives(t *testing.T) {
	m := newMasker(cfgFor(ModeHash, ModeHash))
	for _, s := range []string{
		"", "plain text", "***.***.***.***", "2019-09-04T10:31:49.348+0000", "10:31:49", "12:34:56.789",
		"@timestamp", "@scope/package", "follow @hong", "user@localhost", "image@sha256:0123abcd",
		"std::vector<int> and Error::Decode and Vec::new", "00:1a:2b:3c:4d:5e",
		"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89", // a fingerprint
		"Chrome/129.0.6668.100 Safari/537.36", "1.2.3", "version 1.2.3.456", "1.2.300.4",
		"24bfb870-46da-11e9-aafd-005056ac7022", "nrn:PUB:Account::2401234:Customer/static",
		"a@b", "x@y.123", "::", "[REDACTED_IP]", "[REDACTED_EMAIL]", "ip-0123456789abcdef", "user-0123456789abcdef@navercorp.com",
		"price: 1,234.56", "ratio 3:2:1",
	} {
		got, changed := m.text(s)
		if changed || got != s {
			t.Errorf("text(%q) = %q, want unchanged", s, got)
		}
	}
}

func TestHashMode(t *testing.T) {
	in := "user hong@navercorp.com from 203.0.113.77 and [2001:db8::1]:443"
	a, b := newMasker(cfgFor(ModeHash, ModeHash)), newMasker(cfgFor(ModeHash, ModeHash))
	outA, _ := a.text(in)
	outB, _ := b.text(in)
	if outA != outB {
		t.Fatalf("same key, different output:\n%q\n%q", outA, outB)
	}
	other := cfgFor(ModeHash, ModeHash)
	other.HashKey = "another-key-0123456789"
	outC, _ := newMasker(other).text(in)
	if outC == outA {
		t.Fatalf("different keys gave the same output %q", outA)
	}
	for _, orig := range []string{"hong", "203.0.113", "2001:db8"} {
		if strings.Contains(outA, orig) {
			t.Errorf("%q survives in %q", orig, outA)
		}
	}
	if !strings.Contains(outA, "@navercorp.com") || !strings.Contains(outA, "user-") || !strings.Contains(outA, "ip-") {
		t.Errorf("unexpected pseudonym shape: %q", outA)
	}
	// Equivalent spellings of one address get one pseudonym.
	m := newMasker(cfgFor(ModeHash, ModeHash))
	same := func(x, y string) {
		t.Helper()
		// compare the pseudonyms; the domain and at-sign keep their spelling
		cut := func(s string) string { return s[:strings.IndexAny(s+"@", `@\%`)] }
		px, _ := m.text(x)
		py, _ := m.text(y)
		if cut(px) != cut(py) {
			t.Errorf("%q → %q but %q → %q", x, px, y, py)
		}
	}
	same("203.0.113.77", "::ffff:203.0.113.77")
	same("2001:db8::1", "2001:0DB8:0:0:0:0:0:1")
	same("Hong@NaverCorp.com", "hong@navercorp.com")
	same("hong\\u0040navercorp.com", "hong%40navercorp.com")
	// Pseudonyms are stable across a cache reset.
	p1, _ := m.text("198.51.100.9")
	clear(m.cache)
	p2, _ := m.text("198.51.100.9")
	if p1 != p2 {
		t.Errorf("pseudonym changed after cache reset: %q vs %q", p1, p2)
	}
	if len(p1) != len("ip-")+hashHexLen {
		t.Errorf("pseudonym %q: want ip- and %d hex digits", p1, hashHexLen)
	}
}

func TestIdempotentAcrossModes(t *testing.T) {
	in := `hong@navercorp.com 203.0.113.77 [2001:db8::1]:443 ::ffff:1.2.3.4 {"e":"kim\u0040nhn.com"} ***.***.***.***`
	for _, ip := range []string{ModeTruncate, ModeHash, ModeRedact, ModeKeep} {
		for _, em := range []string{ModePartial, ModeHash, ModeRedact, ModeKeep} {
			m := newMasker(cfgFor(ip, em))
			once, _ := m.text(in)
			twice, changed := m.text(once)
			if changed || twice != once {
				t.Errorf("ip=%s email=%s: %q → %q", ip, em, once, twice)
			}
			if !strings.Contains(once, "***.***.***.***") {
				t.Errorf("ip=%s email=%s: NCP's own mask altered: %q", ip, em, once)
			}
		}
	}
}

// Hex-and-colon soup can keep forming new addresses out of masked ones;
// the scanner then redacts the runs whole, and stays idempotent.
func TestDegenerateTextSettles(t *testing.T) {
	for _, s := range []string{
		"ll00000000000000000:1::00000000000000000:1::00000000000000000:1::,)=",
		"::01.::01.::01.::01.::01.::01.::01.::01.8",
		strings.Repeat("0:1::", 40),
		strings.Repeat("a1.2.3.4.", 30) + "@x" + strings.Repeat(".1", 20) + ".io",
	} {
		for _, cfg := range []*Config{DefaultConfig(), cfgFor(ModeHash, ModeHash), cfgFor(ModeRedact, ModeRedact)} {
			m := newMasker(cfg)
			once, _ := m.text(s)
			if twice, changed := m.text(once); changed {
				t.Errorf("%s: %q → %q → %q", cfg.IP.Mode, s, once, twice)
			}
		}
	}
}

func TestTextAllocations(t *testing.T) {
	m := newMasker(cfgFor(ModeTruncate, ModePartial))
	if n := testing.AllocsPerRun(100, func() { m.text("no address in this string at 10:31:49") }); n != 0 {
		t.Errorf("unchanged string: %v allocs, want 0", n)
	}
	m.text("203.0.113.77")
	if n := testing.AllocsPerRun(100, func() { m.text("203.0.113.77") }); n != 0 {
		t.Errorf("whole-string cached address: %v allocs, want 0", n)
	}
}
