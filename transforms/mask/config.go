package mask

import (
	"errors"
	"strings"

	"github.com/auditforwarder/forwarder/plugins"
)

// IP masking modes.
const (
	// ModeTruncate zeroes the host bits past the configured prefix length;
	// the result is still a valid IP address.
	ModeTruncate = "truncate"
	// ModePartial keeps the first character of an email's local part and
	// its domain: h***@navercorp.com.
	ModePartial = "partial"
	// ModeHash replaces the address with a keyed HMAC-SHA256 pseudonym.
	ModeHash = "hash"
	// ModeRedact replaces the address with a fixed token.
	ModeRedact = "redact"
	// ModeKeep leaves addresses of that kind as they are.
	ModeKeep = "keep"
)

// MinHashKeyLen is the shortest hash_key accepted: a shorter key would let
// anyone who sees pseudonyms brute-force the key and, with it, the small
// IPv4 space.
const MinHashKeyLen = 16

// Config is the `mask` transform's configuration.
type Config struct {
	// IP configures how IPv4 and IPv6 addresses are masked.
	IP IPConfig `koanf:"ip"`
	// Email configures how email addresses are masked.
	Email EmailConfig `koanf:"email"`
	// HashKey is the HMAC-SHA256 key of the hash modes; required by them.
	HashKey plugins.Secret `koanf:"hash_key"`
	// Fields limits masking to these dotted paths (and everything under
	// them); empty masks every string of the document.
	Fields []string `koanf:"fields"`
}

// IPConfig is the `ip:` block.
type IPConfig struct {
	// Mode is truncate, hash, redact or keep.
	Mode string `koanf:"mode"`
	// IPv4Prefix is the number of leading bits truncate keeps of an IPv4 address.
	IPv4Prefix int `koanf:"ipv4_prefix"`
	// IPv6Prefix is the number of leading bits truncate keeps of an IPv6 address.
	IPv6Prefix int `koanf:"ipv6_prefix"`
}

// EmailConfig is the `email:` block.
type EmailConfig struct {
	// Mode is partial, hash, redact or keep.
	Mode string `koanf:"mode"`
}

// DefaultConfig returns the default policy: truncate IPs to /24 and /48,
// partial emails. It is also the policy of the forwarder's own logs when
// the pipeline has no mask transform.
func DefaultConfig() *Config {
	return &Config{
		IP:    IPConfig{Mode: ModeTruncate, IPv4Prefix: 24, IPv6Prefix: 48},
		Email: EmailConfig{Mode: ModePartial},
	}
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	switch c.IP.Mode {
	case ModeTruncate, ModeHash, ModeRedact, ModeKeep:
	default:
		errs = append(errs, plugins.FieldErrorf("ip.mode", "must be one of truncate, hash, redact, keep, got %q", c.IP.Mode))
	}
	if c.IP.IPv4Prefix < 0 || c.IP.IPv4Prefix > 32 {
		errs = append(errs, plugins.FieldErrorf("ip.ipv4_prefix", "must be between 0 and 32, got %d", c.IP.IPv4Prefix))
	}
	if c.IP.IPv6Prefix < 0 || c.IP.IPv6Prefix > 128 {
		errs = append(errs, plugins.FieldErrorf("ip.ipv6_prefix", "must be between 0 and 128, got %d", c.IP.IPv6Prefix))
	}
	switch c.Email.Mode {
	case ModePartial, ModeHash, ModeRedact, ModeKeep:
	default:
		errs = append(errs, plugins.FieldErrorf("email.mode", "must be one of partial, hash, redact, keep, got %q", c.Email.Mode))
	}
	if c.IP.Mode == ModeHash || c.Email.Mode == ModeHash {
		who := "ip.mode is"
		switch {
		case c.IP.Mode == ModeHash && c.Email.Mode == ModeHash:
			who = "ip.mode and email.mode are"
		case c.Email.Mode == ModeHash:
			who = "email.mode is"
		}
		switch {
		case !c.HashKey.IsSet():
			errs = append(errs, plugins.FieldErrorf("hash_key",
				"is required when %s hash: set an HMAC-SHA256 key of at least %d bytes, e.g. hash_key: ${MASK_HASH_KEY}",
				who, MinHashKeyLen))
		case len(c.HashKey.Reveal()) < MinHashKeyLen:
			errs = append(errs, plugins.FieldErrorf("hash_key", "must be at least %d bytes long", MinHashKeyLen))
		}
	}
	for i, f := range c.Fields {
		if f == "" || strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..") {
			errs = append(errs, plugins.FieldErrorf("fields", "entry %d must be a dotted path such as user.email, got %q", i, f))
		}
	}
	return errors.Join(errs...)
}
