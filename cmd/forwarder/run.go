package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/api"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/engine"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/logging"
	"github.com/auditforwarder/forwarder/plugins"
)

func newRunCmd() *cobra.Command {
	var path string
	var sets []string
	var once bool
	var cpuProfile, memProfile, traceFile string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline until SIGINT/SIGTERM (or, with --once, until caught up)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig(config.Options{Path: path, Set: sets})
			if err != nil {
				return err
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return runtimeErr(fmt.Errorf("--cpuprofile: %w", err))
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return runtimeErr(fmt.Errorf("--cpuprofile: %w", err))
				}
				defer pprof.StopCPUProfile()
			}
			if traceFile != "" {
				f, err := os.Create(traceFile)
				if err != nil {
					return runtimeErr(fmt.Errorf("--trace: %w", err))
				}
				defer f.Close()
				if err := trace.Start(f); err != nil {
					return runtimeErr(fmt.Errorf("--trace: %w", err))
				}
				defer trace.Stop()
			}
			if memProfile != "" {
				defer writeMemProfile(memProfile)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			_, err = runPipeline(ctx, cfg, runOptions{once: once, logOut: cmd.ErrOrStderr()})
			return err
		},
	}
	addConfigFlags(cmd, &path, &sets)
	cmd.Flags().BoolVar(&once, "once", false, "exit 0 once every source is caught up and every output acknowledged")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) to this file")
	_ = cmd.Flags().MarkHidden("cpuprofile")
	cmd.Flags().StringVar(&memProfile, "memprofile", "", "write an allocation profile (go tool pprof -sample_index=alloc_space) to this file at exit")
	_ = cmd.Flags().MarkHidden("memprofile")
	cmd.Flags().StringVar(&traceFile, "trace", "", "write an execution trace (go tool trace) to this file")
	_ = cmd.Flags().MarkHidden("trace")
	return cmd
}

// loadConfig builds the registry (built-ins and external plugins) and loads
// the pipeline; its errors exit with code 1.
func loadConfig(opts config.Options) (*config.Config, *plugins.Registry, error) {
	reg, err := newRegistry()
	if err != nil {
		return nil, nil, runtimeErr(err)
	}
	if err := registerExternal(reg, opts); err != nil {
		return nil, nil, configErr(err)
	}
	opts.Registry = reg
	cfg, err := config.Load(opts)
	if err != nil {
		return nil, nil, configErr(err)
	}
	return cfg, reg, nil
}

type runOptions struct {
	once   bool
	logOut io.Writer
	// ready, when set, is called with the engine once it runs (demo uses it).
	ready func(*engine.Engine)
	// logger overrides the logger built from cfg.Log.
	logger *slog.Logger
}

// newLogger builds the process logger with secret scrubbing for cfg.
func newLogger(cfg *config.Config, w io.Writer) (*slog.Logger, error) {
	var secrets []string
	for _, c := range cfg.Components {
		secrets = append(secrets, plugins.CollectSecrets(c.Config)...)
	}
	if cfg.Cluster != nil {
		secrets = append(secrets, plugins.CollectSecrets(cfg.Cluster)...)
	}
	scrubbers := append([]logging.Scrubber{logging.SecretScrubber(secrets)}, logScrubbers(cfg)...)
	return logging.New(w, cfg.Log.Level, cfg.Log.Format, scrubbers...)
}

// runPipeline runs cfg until ctx ends or, in once mode, until caught up.
func runPipeline(ctx context.Context, cfg *config.Config, ro runOptions) (*engine.Engine, error) {
	log := ro.logger
	if log == nil {
		var err error
		log, err = newLogger(cfg, ro.logOut)
		if err != nil {
			return nil, configErr(err)
		}
	}
	slog.SetDefault(log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	opts := engine.Options{Logger: log, Metrics: reg, Once: ro.once}
	// Cluster mode (a `cluster:` block): Kafka checkpoint store + group ownership.
	if err := clusterOptions(ctx, cfg, log, &opts); err != nil {
		log.Error("cannot join the cluster", "error", err)
		return nil, runtimeErr(err)
	}
	eng, err := engine.New(ctx, cfg, opts)
	if err != nil {
		log.Error("cannot build pipeline", "error", err)
		return nil, runtimeErr(err)
	}
	if cfg.API.Address != "" {
		srv, err := api.Start(cfg.API.Address, reg, eng.Health(), log)
		if err != nil {
			return nil, runtimeErr(err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	if ro.ready != nil {
		ro.ready(eng)
	}
	if err := eng.Run(ctx); err != nil {
		log.Error("pipeline failed", "error", err)
		return eng, runtimeErr(err)
	}
	return eng, nil
}

func newValidateCmd() *cobra.Command {
	var path string
	var sets []string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check pipeline.yaml (keys, types, graph, plugin handshakes); exit 1 with every problem listed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig(config.Options{Path: path, Set: sets})
			if err != nil {
				var ee *exitError
				if errors.As(err, &ee) && ee.code == exitConfig {
					for _, line := range plugins.ErrorLines(ee.err) {
						fmt.Fprintln(cmd.ErrOrStderr(), line)
					}
					return &exitError{code: exitConfig, err: fmt.Errorf("%s is not valid (%d problems)", path, len(plugins.ErrorLines(ee.err)))}
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is valid: %d sources, %d transforms, %d outputs\n",
				path, len(cfg.Sources), len(cfg.Transforms), len(cfg.Outputs))
			return nil
		},
	}
	addConfigFlags(cmd, &path, &sets)
	return cmd
}

func newPluginsCmd() *cobra.Command {
	var path, sample string
	var sets []string
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List the component types (built-in and external); --sample TYPE prints a documented example",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := newRegistry()
			if err != nil {
				return runtimeErr(err)
			}
			if err := registerExternal(reg, config.Options{Path: path, Set: sets}); err != nil {
				return configErr(err)
			}
			if sample != "" {
				found := false
				for _, f := range reg.All() {
					if f.Type() == sample {
						fmt.Fprintf(cmd.OutOrStdout(), "# %s %s: %s\n%s", f.Kind(), f.Type(), f.Description(), f.SampleConfig())
						found = true
					}
				}
				if !found {
					return configErr(fmt.Errorf("no component type %q (see `forwarder plugins`)", sample))
				}
				return nil
			}
			w := cmd.OutOrStdout()
			for _, f := range reg.All() {
				fmt.Fprintf(w, "%-10s %-24s %-9s %s\n", f.Kind(), f.Type(), origin(f), f.Description())
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "pipeline.yaml", "path of pipeline.yaml (for plugin_dir)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a key")
	cmd.Flags().StringVar(&sample, "sample", "", "print the sample configuration of a component type")
	return cmd
}

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v := version
			if v == "" {
				v = "dev"
				if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
					v = bi.Main.Version
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "forwarder %s\n", v)
		},
	}
}

// writeMemProfile writes the allocation profile at exit; a failure only
// loses the profile, so it is reported on stderr rather than as the run's
// result.
func writeMemProfile(path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "--memprofile:", err)
	}
}
