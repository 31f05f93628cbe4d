package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/transforms/ecs"
)

func init() { extraCommands = append(extraCommands, newTestCmd) }

// newTestCmd is `forwarder test`: it maps NDJSON raw API items with the ecs
// transform and reports every document that violates the ECS output
// contract (ecs.Check, the check the golden tests use).
func newTestCmd() *cobra.Command {
	var (
		path, transform, dataset string
		sets                     []string
		printDocs, keepOriginal  bool
	)
	cmd := &cobra.Command{
		Use:   "test [FILE...]",
		Short: "Map NDJSON API items (files or stdin) with the ecs transform and report documents that violate the ECS contract",
		Long: `Reads one raw API item per line (NCP Activity Tracer or NHN CloudTrail, as the
file source replays them), maps each with the ecs transform and checks the
document against the ECS output contract. Every violation is printed as
FILE:LINE: event.id=ID: FIELD: PROBLEM. Exit status 1 when any document
violates the contract. With --config, the ecs transform's settings (rules,
verbs, keep_original) come from pipeline.yaml.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataset != "" && dataset != ecs.DatasetNCP && dataset != ecs.DatasetNHN {
				return configErr(fmt.Errorf("--dataset must be %s or %s, got %q", ecs.DatasetNCP, ecs.DatasetNHN, dataset))
			}
			tr, err := testTransform(cmd, path, transform, sets, keepOriginal)
			if err != nil {
				return err
			}
			defer tr.Close(context.Background())
			if len(args) == 0 {
				args = []string{"-"}
			}
			t := &ecsTester{tr: tr, dataset: dataset, print: printDocs, out: cmd.OutOrStdout(), report: cmd.OutOrStdout()}
			if printDocs {
				t.report = cmd.ErrOrStderr()
			}
			for _, name := range args {
				if err := t.checkInput(cmd, name); err != nil {
					return runtimeErr(err)
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "checked %d documents: %d violate the ECS contract (%d violations)\n",
				t.docs, t.bad, t.violations)
			if t.bad > 0 {
				return &exitError{code: exitConfig, err: fmt.Errorf("%d of %d documents violate the ECS contract", t.bad, t.docs)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataset, "dataset", "", "dataset of the items: "+ecs.DatasetNCP+" or "+ecs.DatasetNHN+" (default: each item's event.dataset field)")
	cmd.Flags().StringVarP(&path, "config", "c", "", "take the ecs transform's settings from this pipeline.yaml")
	cmd.Flags().StringVar(&transform, "transform", "", "name of the ecs transform in pipeline.yaml (when it has several)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a key of pipeline.yaml (with --config)")
	cmd.Flags().BoolVar(&printDocs, "print", false, "write the mapped documents to stdout (violations then go to stderr)")
	cmd.Flags().BoolVar(&keepOriginal, "keep-original", false, "set keep_original (event.original)")
	return cmd
}

// testTransform builds the ecs transform: defaults, or the configuration of
// the (named) ecs transform of pipeline.yaml.
func testTransform(cmd *cobra.Command, path, name string, sets []string, keepOriginal bool) (plugins.Transform, error) {
	f := ecs.NewFactory()
	cfg := f.CreateDefaultConfig()
	if path != "" {
		loaded, _, err := loadConfig(config.Options{Path: path, Set: sets})
		if err != nil {
			return nil, err
		}
		var found []*config.Component
		for _, c := range loaded.Components {
			if c.Kind == plugins.KindTransform && c.Type == f.Type() && (name == "" || c.Name == name) {
				found = append(found, c)
			}
		}
		switch {
		case len(found) == 0 && name != "":
			return nil, configErr(fmt.Errorf("%s has no ecs transform named %q", path, name))
		case len(found) == 0:
			return nil, configErr(fmt.Errorf("%s has no transform of type ecs", path))
		case len(found) > 1:
			names := make([]string, len(found))
			for i, c := range found {
				names[i] = c.Name
			}
			return nil, configErr(fmt.Errorf("%s has several ecs transforms (%s): choose one with --transform", path, strings.Join(names, ", ")))
		}
		cfg = found[0].Config
	} else if name != "" {
		return nil, configErr(errors.New("--transform needs --config"))
	}
	if keepOriginal {
		cfg.(*ecs.Config).KeepOriginal = true
	}
	if err := plugins.ValidateConfig("transforms.ecs", cfg); err != nil {
		return nil, configErr(err)
	}
	set := plugins.NopSettings("ecs")
	comp, err := f.Create(cmd.Context(), set, cfg)
	if err != nil {
		return nil, configErr(err)
	}
	return comp.(plugins.Transform), nil
}

type ecsTester struct {
	tr          plugins.Transform
	dataset     string
	print       bool
	out, report io.Writer
	buf         []byte

	docs, bad, violations int
}

// checkInput checks every line of a file ("-" is stdin).
func (t *ecsTester) checkInput(cmd *cobra.Command, name string) error {
	var r io.Reader
	label := name
	if name == "-" {
		r, label = cmd.InOrStdin(), "stdin"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	received := time.Now()
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if strings.TrimSpace(string(text)) == "" {
			continue
		}
		t.docs++
		where := fmt.Sprintf("%s:%d", label, line)
		item, err := plugins.ParseObject(text)
		if err != nil {
			t.fail(where, "", []ecs.Violation{{Problem: "line is not a JSON object: " + err.Error()}})
			continue
		}
		ev := &plugins.Event{Fields: item, Meta: plugins.Meta{Source: "test", Dataset: t.dataset, Received: received}}
		out, err := t.tr.Process(cmd.Context(), []*plugins.Event{ev})
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if len(out) != 1 {
			continue
		}
		ev = out[0]
		var vs []ecs.Violation
		if ev.Meta.Dataset == "" {
			vs = []ecs.Violation{{Field: "event.dataset", Problem: "unknown: give --dataset, or an event.dataset field in the item"}}
		} else {
			vs = ecs.Check(ev.Fields)
		}
		if len(vs) > 0 {
			t.fail(where, ev.Meta.ID, vs)
		}
		if t.print {
			t.buf = append(ev.AppendJSON(t.buf[:0]), '\n')
			if _, err := t.out.Write(t.buf); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	return nil
}

func (t *ecsTester) fail(where, id string, vs []ecs.Violation) {
	t.bad++
	t.violations += len(vs)
	for _, v := range vs {
		if id != "" {
			fmt.Fprintf(t.report, "%s: event.id=%s: %s\n", where, id, v)
		} else {
			fmt.Fprintf(t.report, "%s: %s\n", where, v)
		}
	}
}
