// Command forwarder pulls cloud audit events from NAVER Cloud Activity
// Tracer and NHN Cloud CloudTrail, normalizes them to ECS, masks personal
// data and delivers them at least once to Kafka, Elasticsearch, syslog and
// files, as wired in pipeline.yaml.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitConfig  = 1
	exitRuntime = 2
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func configErr(err error) error  { return &exitError{code: exitConfig, err: err} }
func runtimeErr(err error) error { return &exitError{code: exitRuntime, err: err} }

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

func execute(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintln(stderr, "error:", ee.err)
		return ee.code
	}
	// cobra usage errors (unknown flag, bad args)
	fmt.Fprintln(stderr, "error:", err)
	return exitConfig
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "forwarder",
		Short:         "Forward cloud audit events to Kafka, Elasticsearch and syslog as ECS documents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newRunCmd(), newValidateCmd(), newPluginsCmd(), newVersionCmd())
	for _, extra := range extraCommands {
		root.AddCommand(extra())
	}
	return root
}

// extraCommands are added by other files of this package (demo, test).
var extraCommands []func() *cobra.Command

func addConfigFlags(cmd *cobra.Command, path *string, sets *[]string) {
	cmd.Flags().StringVarP(path, "config", "c", "pipeline.yaml", "path of pipeline.yaml")
	cmd.Flags().StringArrayVar(sets, "set", nil, "override a key: --set sources.ncp.page_size=50 (repeatable)")
}
