package main

import (
	"errors"

	"github.com/auditforwarder/forwarder/plugins"
)

// Config is the asset_owner transform's configuration.
type Config struct {
	// Table is the CSV file: a header row, then one row per asset.
	Table string `koanf:"table"`
	// KeyColumn names the column matched against the event; empty means
	// the first column.
	KeyColumn string `koanf:"key_column"`
	// Match is the dotted path of the event field looked up in the table.
	Match string `koanf:"match"`
	// Target is the object the row's other columns are written under.
	Target string `koanf:"target"`
	// OnMissing says what happens to an event no row matches: keep it
	// unchanged, or tag it.
	OnMissing string `koanf:"on_missing"`
}

func defaultConfig() *Config {
	return &Config{Match: "cloud.account.id", Target: "labels", OnMissing: "keep"}
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, plugins.FieldErrorf("table", "is required: the CSV file of asset owners"))
	}
	if c.Match == "" {
		errs = append(errs, plugins.FieldErrorf("match", "is required: the event field to look up, such as cloud.account.id"))
	}
	if c.Target == "" {
		errs = append(errs, plugins.FieldErrorf("target", "is required: the object the owner fields go under, such as labels"))
	}
	switch c.OnMissing {
	case "keep", "tag":
	default:
		errs = append(errs, plugins.FieldErrorf("on_missing", "must be keep or tag, got %q", c.OnMissing))
	}
	return errors.Join(errs...)
}
