package ecs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/auditforwarder/forwarder/plugins"
)

// Config is the `ecs` transform's configuration.
type Config struct {
	// KeepOriginal puts the raw API item, as JSON, in event.original.
	KeepOriginal bool `koanf:"keep_original"`
	// Rules extend the built-in event.category / event.type rule table.
	// They are tried before the built-in rules, in order; the first rule
	// that matches an event decides its categorization.
	Rules []Rule `koanf:"rules"`
	// Verbs extend the built-in verb table: an event.type value (creation,
	// deletion, change, …) to the action words that imply it.
	Verbs map[string][]string `koanf:"verbs"`
}

// Rule is one row of the categorization table (see rules.yaml).
type Rule struct {
	// Name identifies the rule in errors and tests.
	Name string `koanf:"name" yaml:"name"`
	// Dataset limits the rule to one dataset; empty applies it to both.
	Dataset string `koanf:"dataset" yaml:"dataset"`
	// Match lists phrases; the rule applies when any of them occurs, as
	// whole words and case-insensitively, in the event's action or
	// resource (NCP: actionDisplayName, resourceType, productName; NHN: eventId).
	Match []string `koanf:"match" yaml:"match"`
	// And, when set, must match too (any of its phrases).
	And []string `koanf:"and" yaml:"and"`
	// Not lists phrases that veto the rule.
	Not []string `koanf:"not" yaml:"not"`
	// Category is the event.category list; ECS allowed values only.
	Category []string `koanf:"category" yaml:"category"`
	// Type is the fixed part of event.type; the action's verb type
	// (creation, deletion, change) is added to it, and `info` is used
	// when the result is empty. ECS allowed values only.
	Type []string `koanf:"type" yaml:"type"`
}

func defaultConfig() *Config { return &Config{} }

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	for typ, words := range c.Verbs {
		if !allowedTypes[typ] {
			errs = append(errs, plugins.FieldErrorf("verbs."+typ, "is not an ECS event.type allowed value (%s)", strings.Join(allowedTypeList, ", ")))
		}
		for i, w := range words {
			if len(tokenize(nil, w)) != 1 {
				errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("verbs.%s[%d]", typ, i), "must be one word, got %q", w))
			}
		}
	}
	return errors.Join(errs...)
}

// Validate implements plugins.Validator; the walk prefixes rules[i].
func (r *Rule) Validate() error {
	var errs []error
	if r.Dataset != "" && r.Dataset != DatasetNCP && r.Dataset != DatasetNHN {
		errs = append(errs, plugins.FieldErrorf("dataset", "must be %s, %s or empty, got %q", DatasetNCP, DatasetNHN, r.Dataset))
	}
	if len(r.Match) == 0 {
		errs = append(errs, plugins.FieldErrorf("match", "must list at least one phrase"))
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"match", r.Match}, {"and", r.And}, {"not", r.Not}} {
		for i, p := range l.list {
			if len(tokenize(nil, p)) == 0 {
				errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("%s[%d]", l.key, i), "must contain a word, got %q", p))
			}
		}
	}
	if len(r.Category) == 0 {
		errs = append(errs, plugins.FieldErrorf("category", "must list at least one ECS event.category value"))
	}
	for i, c := range r.Category {
		if !allowedCategories[c] {
			errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("category[%d]", i), "%q is not an ECS event.category allowed value (%s)", c, strings.Join(allowedCategoryList, ", ")))
		}
	}
	for i, t := range r.Type {
		if !allowedTypes[t] {
			errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("type[%d]", i), "%q is not an ECS event.type allowed value (%s)", t, strings.Join(allowedTypeList, ", ")))
		}
	}
	return errors.Join(errs...)
}
