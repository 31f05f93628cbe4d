package plugins

import (
	"fmt"
	"log/slog"
	"reflect"
)

// Redacted is what a Secret prints as.
const Redacted = "[REDACTED]"

// Secret is a string that never shows its value: fmt verbs, JSON, YAML and
// slog all render it as [REDACTED]. Use Reveal where the value is needed.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return s.mask() }

// GoString implements fmt.GoStringer, used by %#v.
func (s Secret) GoString() string { return `"` + s.mask() + `"` }

// Format covers every fmt verb, including %x and %q that bypass String.
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(s.mask())) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.mask() + `"`), nil }

// MarshalText implements encoding.TextMarshaler (YAML, TOML, env printers).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.mask()) }

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// CollectSecrets returns the values of every Secret field reachable from
// cfg (structs, pointers, slices, maps), so a log scrubber can remove them
// even from text that was never typed as a Secret (an error quoting a URL).
func CollectSecrets(cfg any) []string {
	var out []string
	collectSecrets(reflect.ValueOf(cfg), &out, 0)
	return out
}

var secretType = reflect.TypeOf(Secret(""))

func collectSecrets(v reflect.Value, out *[]string, depth int) {
	if !v.IsValid() || depth > 32 {
		return
	}
	if v.Type() == secretType {
		if s := v.String(); s != "" {
			*out = append(*out, s)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			collectSecrets(v.Elem(), out, depth+1)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				collectSecrets(v.Field(i), out, depth+1)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			collectSecrets(v.Index(i), out, depth+1)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			collectSecrets(it.Value(), out, depth+1)
		}
	}
}
