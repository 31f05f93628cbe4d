package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/logging"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/transforms/mask"
)

// logScrubbers returns the address-masking scrubber applied to the
// forwarder's own logs: the policy of the pipeline's first mask transform
// (in name order), or mask.DefaultConfig when the pipeline has none, so an
// IP or email address quoted in an error message or a URL is masked in
// the log line exactly as it would be in a document.
func logScrubbers(cfg *config.Config) []logging.Scrubber {
	var policy *mask.Config
	if cfg != nil {
		for _, c := range cfg.Components {
			if c.Kind != plugins.KindTransform || c.Type != "mask" {
				continue
			}
			if mc, ok := c.Config.(*mask.Config); ok {
				policy = mc
				break
			}
		}
	}
	scrub, err := mask.NewStringMasker(policy)
	if err != nil {
		// The pipeline was validated when it was loaded, so this cannot
		// happen with a loaded config; never log addresses because of it.
		scrub, _ = mask.NewStringMasker(nil)
	}
	return []logging.Scrubber{keepInfrastructure(scrub, infrastructureHosts(cfg))}
}

// infrastructureHosts returns the hosts the pipeline itself connects to
// (brokers, Elasticsearch nodes, syslog receivers, API endpoints) and the
// loopback addresses: they are no one's personal data, and an operator
// reading "dial tcp 10.0.0.5:9092: connection refused" needs the real one.
func infrastructureHosts(cfg *config.Config) []string {
	hosts := []string{"127.0.0.1", "::1", "0.0.0.0"}
	if cfg == nil {
		return hosts
	}
	add := func(v string) {
		if u, err := url.Parse(v); err == nil && u.Host != "" {
			v = u.Host
		}
		if h, _, err := net.SplitHostPort(v); err == nil {
			v = h
		}
		if v != "" {
			hosts = append(hosts, v)
		}
	}
	for _, c := range cfg.Components {
		for _, key := range []string{"brokers", "addresses", "endpoint", "address"} {
			switch v := c.Raw[key].(type) {
			case string:
				add(v)
			case []any:
				for _, e := range v {
					if s, ok := e.(string); ok {
						add(s)
					}
				}
			}
		}
	}
	return hosts
}

// keepInfrastructure wraps scrub so that the given hosts survive it: they
// are swapped for placeholders the masker cannot match, then restored.
func keepInfrastructure(scrub logging.Scrubber, hosts []string) logging.Scrubber {
	var hide, show []string
	for i, h := range hosts {
		ph := fmt.Sprintf("\x00host%d\x00", i)
		hide = append(hide, h, ph)
		show = append(show, ph, h)
	}
	hider, shower := strings.NewReplacer(hide...), strings.NewReplacer(show...)
	return func(s string) string { return shower.Replace(scrub(hider.Replace(s))) }
}
