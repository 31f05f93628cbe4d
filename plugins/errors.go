package plugins

import (
	"errors"
	"fmt"
	"strings"
)

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: the engine stops retrying and
// sends the affected events to the dead-letter file (outputs, transforms) or
// stops the component (sources).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// EventFailure is the failure of one event of a batch handed to Output.Write.
type EventFailure struct {
	// Index is the event's position in the slice given to Write.
	Index int
	// Err is the reason; wrap it with Permanent when retrying cannot help.
	Err error
}

// BatchError reports per-event failures of an Output.Write call. Events not
// listed were accepted.
type BatchError struct {
	Failures []EventFailure
}

// Add records the failure of the event at index i.
func (b *BatchError) Add(i int, err error) {
	b.Failures = append(b.Failures, EventFailure{Index: i, Err: err})
}

// Err returns b as an error, or nil when nothing failed.
func (b *BatchError) Err() error {
	if b == nil || len(b.Failures) == 0 {
		return nil
	}
	return b
}

// Error summarizes the failures.
func (b *BatchError) Error() string {
	perm := 0
	for _, f := range b.Failures {
		if IsPermanent(f.Err) {
			perm++
		}
	}
	first := ""
	if len(b.Failures) > 0 {
		first = ": " + b.Failures[0].Err.Error()
	}
	return fmt.Sprintf("%d events failed (%d permanently)%s", len(b.Failures), perm, first)
}

// FieldError is a configuration problem at a key path.
type FieldError struct {
	Path string
	Msg  string
}

// Error renders "path: message".
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// FieldErrorf returns a FieldError for key (relative to the config struct
// whose Validate reports it); the validation walk prefixes the parent path.
func FieldErrorf(key, format string, args ...any) error {
	return &FieldError{Path: key, Msg: fmt.Sprintf(format, args...)}
}

// PrefixErrors returns err with every FieldError's path (and every other
// error's message) prefixed by prefix, splitting joined errors.
func PrefixErrors(prefix string, err error) error {
	if err == nil || prefix == "" {
		return err
	}
	var out []error
	for _, e := range flatten(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			p := prefix
			if fe.Path != "" {
				p = prefix + "." + fe.Path
			}
			out = append(out, &FieldError{Path: p, Msg: fe.Msg})
			continue
		}
		out = append(out, &FieldError{Path: prefix, Msg: e.Error()})
	}
	return errors.Join(out...)
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// ErrorLines splits a (possibly joined) error into its messages.
func ErrorLines(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range flatten(err) {
		out = append(out, strings.Split(e.Error(), "\n")...)
	}
	return out
}
