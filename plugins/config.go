package plugins

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// Validator is implemented by config structs (and nested structs) that check
// their own values. Errors should be FieldErrorf(key, ...) with the key
// relative to the struct; the walk adds the parent path.
type Validator interface {
	Validate() error
}

var durationType = reflect.TypeOf(time.Duration(0))

// DecodeConfig decodes raw (as produced by YAML, JSON or koanf) over dst, a
// pointer to a config struct already holding its defaults. Decoding is
// strict: unknown keys are errors and values are never coerced between
// types (a string is not an int), except that durations are parsed from Go
// duration strings. Error messages name the key but never echo the value,
// so a misplaced secret cannot leak through them.
func DecodeConfig(raw map[string]any, dst any) error {
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       typeCheckHook,
		ErrorUnused:      true,
		WeaklyTypedInput: false,
		ZeroFields:       false,
		Result:           dst,
		TagName:          "koanf",
		Metadata:         &md,
		Squash:           true,
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(raw); err != nil {
		return cleanDecodeError(err, reflect.TypeOf(dst).Elem().String())
	}
	return nil
}

// DecodeJSONConfig decodes a JSON object strictly over dst, as DecodeConfig.
// Numbers keep their exact value (no float rounding of integers).
func DecodeJSONConfig(data []byte, dst any) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("config is not a JSON object: %w", err)
	}
	return DecodeConfig(normalizeNumbers(raw).(map[string]any), dst)
}

func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeNumbers(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = normalizeNumbers(e)
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return int(i)
		}
		f, _ := t.Float64()
		return f
	}
	return v
}

// cleanDecodeError rewrites mapstructure's messages into "key: problem" lines.
func cleanDecodeError(err error, rootName string) error {
	var out []error
	strip := func(k string) string {
		if k == rootName {
			return ""
		}
		return strings.TrimPrefix(k, rootName+".")
	}
	for _, line := range ErrorLines(err) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasSuffix(line, "error(s) decoding:") || strings.HasPrefix(line, "decoding failed due to") {
			continue
		}
		line = strings.TrimPrefix(line, "* ")
		if strings.HasPrefix(line, "'") {
			// "'key' message" → key: message
			if end := strings.Index(line[1:], "'"); end >= 0 {
				key, msg := strip(line[1:1+end]), strings.TrimSpace(line[2+end:])
				msg = strings.TrimPrefix(msg, "error decoding: ")
				if strings.HasPrefix(msg, "has invalid keys: ") {
					for _, k := range strings.Split(strings.TrimPrefix(msg, "has invalid keys: "), ", ") {
						out = append(out, &FieldError{Path: joinKey(key, k), Msg: "unknown key"})
					}
					continue
				}
				out = append(out, &FieldError{Path: key, Msg: msg})
				continue
			}
		}
		if strings.HasPrefix(line, "has invalid keys: ") {
			for _, k := range strings.Split(strings.TrimPrefix(line, "has invalid keys: "), ", ") {
				out = append(out, &FieldError{Path: k, Msg: "unknown key"})
			}
			continue
		}
		if strings.HasPrefix(line, "error decoding '") {
			rest := strings.TrimPrefix(line, "error decoding '")
			if end := strings.Index(rest, "'"); end >= 0 {
				out = append(out, &FieldError{Path: strip(rest[:end]), Msg: strings.TrimLeft(rest[end+1:], ": ")})
				continue
			}
		}
		out = append(out, errors.New(line))
	}
	if len(out) == 0 {
		return err
	}
	return errors.Join(out...)
}

func joinKey(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// typeCheckHook refuses mismatched scalar types with a message that names
// the expected and actual type but not the value.
func typeCheckHook(from, to reflect.Type, data any) (any, error) {
	if data == nil {
		return data, nil
	}
	if to == durationType {
		switch v := data.(type) {
		case string:
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("must be a duration such as 30s, 10m or 720h")
			}
			return d, nil
		case time.Duration:
			return v, nil
		default:
			return nil, fmt.Errorf("must be a duration string such as 30s, got %s", kindName(from))
		}
	}
	fk, tk := from.Kind(), to.Kind()
	bad := false
	switch tk {
	case reflect.String:
		bad = fk != reflect.String
	case reflect.Bool:
		bad = fk != reflect.Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		switch fk {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		case reflect.Float32, reflect.Float64:
			f := reflect.ValueOf(data).Float()
			bad = f != float64(int64(f))
		default:
			bad = true
		}
	case reflect.Float32, reflect.Float64:
		switch fk {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
		default:
			bad = true
		}
	case reflect.Slice:
		bad = fk != reflect.Slice && fk != reflect.Array
	case reflect.Map, reflect.Struct:
		bad = fk != reflect.Map && fk != reflect.Struct
	}
	if bad {
		return nil, fmt.Errorf("must be %s, got %s", kindName(to), kindName(from))
	}
	return data, nil
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.Kind().String()
}

// ValidateConfig walks cfg (a pointer to a config struct) depth first and
// calls Validate on every struct, pointer and slice element that implements
// Validator, prefixing each error with its key path (from koanf tags) and
// with prefix, e.g. "sources.ncp". All errors are returned, joined.
func ValidateConfig(prefix string, cfg any) error {
	var errs []error
	walkValidate(reflect.ValueOf(cfg), prefix, &errs)
	return errors.Join(errs...)
}

var validatorType = reflect.TypeOf((*Validator)(nil)).Elem()

func walkValidate(v reflect.Value, path string, errs *[]error) {
	if !v.IsValid() {
		return
	}
	if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		// The element of a pointer is addressable, so pointer-receiver
		// Validate methods are found below.
		walkValidate(v.Elem(), path, errs)
		return
	}
	// Value receivers.
	if v.Type().Implements(validatorType) {
		if err := v.Interface().(Validator).Validate(); err != nil {
			*errs = append(*errs, PrefixErrors(path, err))
		}
	} else if v.CanAddr() && v.Addr().Type().Implements(validatorType) {
		if err := v.Addr().Interface().(Validator).Validate(); err != nil {
			*errs = append(*errs, PrefixErrors(path, err))
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Tag.Get("koanf")
			if name == "-" {
				continue
			}
			name = strings.Split(name, ",")[0]
			child := path
			if name != "" {
				child = joinKey(path, name)
			}
			walkValidate(v.Field(i), child, errs)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walkValidate(v.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			walkValidate(iter.Value(), joinKey(path, fmt.Sprint(iter.Key().Interface())), errs)
		}
	}
}
