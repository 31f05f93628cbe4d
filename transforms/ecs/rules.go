package ecs

import (
	_ "embed"
	"fmt"
	"slices"

	yaml "go.yaml.in/yaml/v3"
)

//go:embed rules.yaml
var builtinRulesYAML []byte

// ruleFile is the shape of rules.yaml.
type ruleFile struct {
	Verbs map[string][]string `yaml:"verbs"`
	Rules []Rule              `yaml:"rules"`
}

// loadBuiltinRules parses the embedded rule table.
func loadBuiltinRules() (ruleFile, error) {
	var f ruleFile
	if err := yaml.Unmarshal(builtinRulesYAML, &f); err != nil {
		return f, fmt.Errorf("built-in rules.yaml: %w", err)
	}
	return f, nil
}

// classification is the categorization of one kind of event. Its slices
// are shared between events and never modified.
type classification struct {
	category []any // strings, boxed once
	types    []any
	rule     string // the matching rule's name, "" for the default
}

// strings returns the category and type values, for tests and messages.
func (c *classification) strings() (category, types []string) {
	for _, v := range c.category {
		category = append(category, v.(string))
	}
	for _, v := range c.types {
		types = append(types, v.(string))
	}
	return category, types
}

type compiledRule struct {
	name            string
	dataset         string
	match, and, not [][]string
	category, typ   []string
}

// classifier applies the rule table. It caches the classification of each
// distinct (dataset, action, resource) tuple: audit logs repeat a few
// hundred actions, so the table is consulted once per action, not per event.
// It is not safe for concurrent use (a transform's Process never is).
type classifier struct {
	rules []compiledRule
	verbs map[string]string // word → event.type
	cache map[string]*classification
	key   []byte
	toks  []string
}

// maxCacheEntries bounds the cache; it is emptied when full.
const maxCacheEntries = 8192

func newClassifier(user []Rule, userVerbs map[string][]string) (*classifier, error) {
	builtin, err := loadBuiltinRules()
	if err != nil {
		return nil, err
	}
	c := &classifier{verbs: map[string]string{}, cache: map[string]*classification{}}
	addVerbs := func(m map[string][]string) error {
		types := make([]string, 0, len(m))
		for t := range m {
			types = append(types, t)
		}
		slices.Sort(types)
		for _, t := range types {
			if !allowedTypes[t] {
				return fmt.Errorf("verbs: %q is not an ECS event.type allowed value", t)
			}
			for _, w := range m[t] {
				toks := tokenize(nil, w)
				if len(toks) != 1 {
					return fmt.Errorf("verbs.%s: %q must be one word", t, w)
				}
				c.verbs[toks[0]] = t
			}
		}
		return nil
	}
	if err := addVerbs(builtin.Verbs); err != nil {
		return nil, fmt.Errorf("built-in rules.yaml: %w", err)
	}
	if err := addVerbs(userVerbs); err != nil { // user verbs override built-in ones
		return nil, err
	}
	for _, r := range append(slices.Clone(user), builtin.Rules...) {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("rule %q: %w", r.Name, err)
		}
		c.rules = append(c.rules, compiledRule{
			name: r.Name, dataset: r.Dataset,
			match: phrases(r.Match), and: phrases(r.And), not: phrases(r.Not),
			category: slices.Clone(r.Category), typ: slices.Clone(r.Type),
		})
	}
	return c, nil
}

func phrases(list []string) [][]string {
	out := make([][]string, 0, len(list))
	for _, p := range list {
		out = append(out, tokenize(nil, p))
	}
	return out
}

// classify returns the categorization of an event of dataset whose action
// text is action and whose resource texts are res (may be empty).
// fork returns a classifier sharing c's rules, with a cache of its own.
func (c *classifier) fork() *classifier {
	return &classifier{rules: c.rules, verbs: c.verbs, cache: map[string]*classification{}}
}

func (c *classifier) classify(dataset byte, action string, res ...string) *classification {
	k := append(c.key[:0], dataset)
	k = append(k, action...)
	for _, r := range res {
		k = append(k, 0)
		k = append(k, r...)
	}
	c.key = k
	if cl, ok := c.cache[string(k)]; ok {
		return cl
	}
	cl := c.compute(datasetName(dataset), action, res)
	if len(c.cache) >= maxCacheEntries {
		clear(c.cache)
	}
	c.cache[string(k)] = cl
	return cl
}

func datasetName(b byte) string {
	switch b {
	case dsNCP:
		return DatasetNCP
	case dsNHN:
		return DatasetNHN
	}
	return ""
}

// separator keeps phrases from matching across two texts.
const separator = "\x00"

func (c *classifier) compute(dataset, action string, res []string) *classification {
	toks := tokenize(c.toks[:0], action)
	nAction := len(toks)
	for _, r := range res {
		toks = append(toks, separator)
		toks = tokenize(toks, r)
	}
	c.toks = toks
	category, types, rule := []string{"configuration"}, []string(nil), ""
	// The action's own words decide first ("Create Role" on the SubAccount
	// product is about a role); the resource words only when they do not.
	r := c.firstMatch(dataset, toks[:nAction])
	if r == nil {
		r = c.firstMatch(dataset, toks)
	}
	if r != nil {
		category, types, rule = r.category, slices.Clone(r.typ), r.name
	}
	for _, t := range toks[:nAction] {
		if typ, ok := c.verbs[t]; ok {
			if !slices.Contains(types, typ) {
				types = append(types, typ)
			}
			break
		}
	}
	if len(types) == 0 {
		types = []string{"info"}
	}
	return &classification{category: boxAll(category), types: boxAll(types), rule: rule}
}

func boxAll(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

func (c *classifier) firstMatch(dataset string, toks []string) *compiledRule {
	for i := range c.rules {
		r := &c.rules[i]
		if r.dataset != "" && r.dataset != dataset {
			continue
		}
		if anyPhrase(toks, r.match) && (len(r.and) == 0 || anyPhrase(toks, r.and)) && !anyPhrase(toks, r.not) {
			return r
		}
	}
	return nil
}

func anyPhrase(toks []string, list [][]string) bool {
	for _, p := range list {
		if containsPhrase(toks, p) {
			return true
		}
	}
	return false
}

func containsPhrase(toks, p []string) bool {
	if len(p) == 0 {
		return false
	}
	for i := 0; i+len(p) <= len(toks); i++ {
		if toks[i] != p[0] {
			continue
		}
		j := 1
		for j < len(p) && toks[i+j] == p[j] {
			j++
		}
		if j == len(p) {
			return true
		}
	}
	return false
}

// tokenize appends the lower-case words of s to dst. Words are runs of
// letters and digits (any non-ASCII byte counts as a letter, so Korean or
// Japanese action names form words too); a lower-case letter followed by an
// upper-case one, and an acronym followed by a capitalized word
// ("ACGRule"), also separate words.
func tokenize(dst []string, s string) []string {
	start := -1
	var word []byte
	flush := func(end int) {
		if start >= 0 && end > start {
			word = word[:0]
			for i := start; i < end; i++ {
				ch := s[i]
				if 'A' <= ch && ch <= 'Z' {
					ch += 'a' - 'A'
				}
				word = append(word, ch)
			}
			dst = append(dst, string(word))
		}
		start = -1
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !isWordByte(ch) {
			flush(i)
			continue
		}
		if start < 0 {
			start = i
			continue
		}
		if isUpper(ch) {
			prev := s[i-1]
			if isLower(prev) || (isUpper(prev) && i+1 < len(s) && isLower(s[i+1]) && i-1 > start) {
				flush(i)
				start = i
			}
		}
	}
	flush(len(s))
	return dst
}

func isWordByte(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c >= 0x80
}
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
