package elasticsearch

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// mappingsJSON holds the ECS mappings of the index template: explicit types
// for every field the ecs transform emits, keyword siblings for the values
// the mask transform moves out of ip fields (source.ip → source.ip_masked),
// and the vendor payloads (ncloud.*, nhncloud.*) as flattened fields so
// their unknown keys never add mappings.
//
//go:embed mappings.json
var mappingsJSON []byte

// templateManagedBy marks templates this output installs.
const templateManagedBy = "audit-forwarder"

// indexTemplate is the composable index template the output installs.
type indexTemplate struct {
	name string
	body []byte
	hash string
}

// buildTemplate returns the template for cfg: the index (or its date
// pattern as a wildcard) as index_patterns, the configured priority,
// data_stream: {} in data stream mode, and the ECS mappings.
func buildTemplate(cfg *Config, pattern indexPattern) (indexTemplate, error) {
	var mappings map[string]any
	if err := json.Unmarshal(mappingsJSON, &mappings); err != nil {
		return indexTemplate{}, fmt.Errorf("embedded mappings: %w", err)
	}
	name := cfg.TemplateName
	if name == "" {
		name = pattern.prefix()
		if name == "" || !validName(name) {
			name = "cloudaudit"
		}
	}
	tmpl := map[string]any{
		"index_patterns": []string{pattern.wildcard()},
		"priority":       cfg.TemplatePriority,
		"template":       map[string]any{"mappings": mappings},
	}
	if cfg.DataStream {
		tmpl["data_stream"] = map[string]any{}
	}
	// The hash covers everything but itself, so a changed template (a new
	// forwarder version, another priority) is installed again.
	unhashed, err := json.Marshal(tmpl)
	if err != nil {
		return indexTemplate{}, err
	}
	sum := sha256.Sum256(unhashed)
	hash := hex.EncodeToString(sum[:8])
	tmpl["_meta"] = map[string]any{
		"managed_by":    templateManagedBy,
		"template_hash": hash,
		"description":   "ECS mappings for cloud audit events (audit-forwarder elasticsearch output)",
	}
	body, err := json.Marshal(tmpl)
	if err != nil {
		return indexTemplate{}, err
	}
	return indexTemplate{name: name, body: body, hash: hash}, nil
}

// installTemplate puts the index template unless the cluster already holds
// this exact version, and creates the data stream in data stream mode. It
// is idempotent and safe to call concurrently with writes.
func (o *output) installTemplate(ctx context.Context) error {
	current, err := o.currentTemplateHash(ctx)
	if err != nil {
		return err
	}
	if current != o.tmpl.hash {
		res, err := esapi.IndicesPutIndexTemplateRequest{
			Name: o.tmpl.name,
			Body: bytes.NewReader(o.tmpl.body),
		}.Do(ctx, o.client)
		if err != nil {
			return fmt.Errorf("install index template %s: %w", o.tmpl.name, err)
		}
		if err := responseError(res, "install index template "+o.tmpl.name); err != nil {
			return err
		}
		o.set.Logger.Info("index template installed", "template", o.tmpl.name,
			"index_patterns", o.pattern.wildcard(), "priority", o.cfg.TemplatePriority, "data_stream", o.cfg.DataStream)
	}
	if !o.cfg.DataStream {
		return nil
	}
	res, err := esapi.IndicesCreateDataStreamRequest{Name: o.cfg.Index}.Do(ctx, o.client)
	if err != nil {
		return fmt.Errorf("create data stream %s: %w", o.cfg.Index, err)
	}
	defer closeBody(res)
	switch {
	case res.StatusCode < 300:
		o.set.Logger.Info("data stream created", "data_stream", o.cfg.Index)
		return nil
	case res.StatusCode == http.StatusMethodNotAllowed:
		// A distribution without the data streams API (the integration
		// test build): the first write creates the data stream from the
		// template, which is now in place.
		return nil
	case res.StatusCode == http.StatusBadRequest:
		e := parseErrorBody(res.Body)
		if e.Type == "resource_already_exists_exception" {
			return nil
		}
		return classifyStatus(res.StatusCode, fmt.Errorf("create data stream %s: %s", o.cfg.Index, e))
	default:
		return classifyStatus(res.StatusCode, fmt.Errorf("create data stream %s: %s", o.cfg.Index, parseErrorBody(res.Body).withStatus(res.StatusCode)))
	}
}

// currentTemplateHash returns the template_hash of the installed template,
// or "" when there is none (or it was not installed by the forwarder).
func (o *output) currentTemplateHash(ctx context.Context) (string, error) {
	res, err := esapi.IndicesGetIndexTemplateRequest{Name: o.tmpl.name}.Do(ctx, o.client)
	if err != nil {
		return "", fmt.Errorf("read index template %s: %w", o.tmpl.name, err)
	}
	defer closeBody(res)
	if res.StatusCode == http.StatusNotFound {
		return "", nil
	}
	if res.StatusCode >= 300 {
		return "", classifyStatus(res.StatusCode, fmt.Errorf("read index template %s: %s", o.tmpl.name, parseErrorBody(res.Body).withStatus(res.StatusCode)))
	}
	var got struct {
		IndexTemplates []struct {
			Name          string `json:"name"`
			IndexTemplate struct {
				Meta struct {
					TemplateHash string `json:"template_hash"`
				} `json:"_meta"`
			} `json:"index_template"`
		} `json:"index_templates"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 8<<20)).Decode(&got); err != nil {
		return "", fmt.Errorf("read index template %s: %w", o.tmpl.name, err)
	}
	for _, t := range got.IndexTemplates {
		if t.Name == o.tmpl.name {
			return t.IndexTemplate.Meta.TemplateHash, nil
		}
	}
	return "", nil
}
