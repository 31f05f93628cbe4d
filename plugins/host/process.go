package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/auditforwarder/forwarder/plugins/rpc"
)

// DefaultStartTimeout bounds the handshake of a plugin process. go-plugin's
// default is a minute; a plugin binary that has not printed its handshake
// line within seconds is hung or is not a plugin, and the pipeline should
// say so rather than sit there.
const DefaultStartTimeout = 10 * time.Second

// passEnv lists the only variables of the forwarder's environment a plugin
// process gets. The forwarder's environment holds cloud credentials
// (NCP_SECRET_KEY, NHN_SECRET_ACCESS_KEY, …) that are none of a plugin's
// business: whatever a plugin needs it gets from its own config block.
// Proxy variables are left out too, as they may embed credentials.
var passEnv = []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR"}

// pluginEnv builds the explicit environment of a plugin process; go-plugin
// adds its handshake variables (magic cookie, protocol versions, the
// AutoMTLS client certificate) to it.
func pluginEnv(level slog.Level) []string {
	env := make([]string, 0, len(passEnv)+1)
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, rpc.LogLevelEnv+"="+rpc.LevelName(level))
}

// launchConfig says how to start one plugin process.
type launchConfig struct {
	path string
	// sha256, when set, must match the binary's SHA-256; go-plugin checks
	// it (SecureConfig) right before starting the process.
	sha256       []byte
	logger       *slog.Logger
	startTimeout time.Duration
}

// process is one running plugin binary.
type process struct {
	client *plugin.Client
	rpc    *rpc.Client
	logs   *pluginLog
	pid    int
	// socket is the plugin's unix socket, removed after the process ends
	// (a crashed plugin cannot remove it itself).
	socket string
	// shared is the memory region shared with the process, or nil.
	shared *rpc.Region
}

// launch starts a plugin binary and completes the handshake.
func launch(cfg launchConfig) (*process, error) {
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.startTimeout <= 0 {
		cfg.startTimeout = DefaultStartTimeout
	}
	path, err := filepath.Abs(cfg.path)
	if err != nil {
		return nil, err
	}
	if err := checkExecutable(path); err != nil {
		return nil, err
	}
	level := slog.LevelError + 4
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if cfg.logger.Enabled(context.Background(), l) {
			level = l
			break
		}
	}
	cmd := exec.Command(path)
	cmd.Env = pluginEnv(level)
	setProcAttr(cmd)
	// Batches cross in memory shared with the process when both sides can
	// (rpc.FEATURE_SHARED_MEMORY); without a region they cross the socket.
	shared, err := rpc.NewRegion(rpc.DefaultSharedSize)
	if err == nil {
		cmd.ExtraFiles = []*os.File{shared.File()}
		cmd.Env = append(cmd.Env, shared.Env(3)) // ExtraFiles[0] is descriptor 3
	} else {
		cfg.logger.Debug("plugin batches cross the socket", "reason", err)
	}
	logs := newPluginLog(cfg.logger, path)
	var secure *plugin.SecureConfig
	if cfg.sha256 != nil {
		secure = &plugin.SecureConfig{Checksum: cfg.sha256, Hash: sha256.New()}
	}
	ccfg := &plugin.ClientConfig{
		HandshakeConfig:  rpc.Handshake,
		VersionedPlugins: rpc.PluginSets(nil),
		Cmd:              cmd,
		// The host environment is NOT passed: cmd.Env above is all of it.
		SkipHostEnv:      true,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     cfg.startTimeout,
		GRPCDialOptions:  rpc.DialOptions(),
		Logger:           logs.hclogger(),
		Stderr:           io.Discard,
		SyncStdout:       logs.lineWriter("stdout"),
		SyncStderr:       logs.lineWriter("stderr"),
	}
	client := plugin.NewClient(ccfg)
	addr, err := client.Start()
	if shared != nil {
		// The process has its own descriptor now, or failed to start.
		shared.CloseFile()
	}
	var cp plugin.ClientProtocol
	if err == nil {
		// Dial the plugin's socket ourselves, to size its buffers (see
		// rpc.Dialer); go-plugin reads the dial options only now, in
		// Client, once Start has told where the plugin listens.
		ccfg.GRPCDialOptions = append(ccfg.GRPCDialOptions, grpc.WithContextDialer(rpc.Dialer(addr)))
		cp, err = client.Client()
	}
	if err != nil {
		client.Kill()
		shared.Close()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, checksumError(path, cfg.sha256)
		}
		// go-plugin's handshake errors span many lines of advice; keep
		// the first and say it plainly.
		msg := firstLine(err.Error())
		if strings.Contains(msg, "Unrecognized remote plugin message") {
			msg = "it did not answer the plugin handshake: not a forwarder plugin, or it exited early"
		}
		if p := logs.LastPanic(); p != "" {
			msg += " (it panicked: " + firstLine(p) + ")"
		}
		return nil, fmt.Errorf("starting plugin %s: %s", cfg.path, msg)
	}
	raw, err := cp.Dispense(rpc.PluginName)
	if err != nil {
		client.Kill()
		shared.Close()
		return nil, fmt.Errorf("plugin %s: %w", cfg.path, err)
	}
	rc, ok := raw.(*rpc.Client)
	if !ok {
		client.Kill()
		shared.Close()
		return nil, fmt.Errorf("plugin %s: unexpected client type %T", cfg.path, raw)
	}
	if shared != nil {
		rc.UseShared(shared)
	}
	p := &process{client: client, rpc: rc, logs: logs, shared: shared}
	if rc := client.ReattachConfig(); rc != nil {
		p.pid = rc.Pid
		if rc.Addr != nil && rc.Addr.Network() == "unix" {
			p.socket = rc.Addr.String()
		}
	}
	return p, nil
}

// kill stops the process: gracefully (go-plugin asks it to exit and waits
// up to two seconds), then by force.
func (p *process) kill() {
	p.client.Kill()
	if p.socket != "" {
		_ = os.Remove(p.socket)
	}
	p.shared.Close()
}

func (p *process) exited() bool { return p.client.Exited() }

func checkExecutable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("plugin binary: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("plugin binary %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("plugin binary %s is not executable", path)
	}
	return nil
}

// fileSHA256 returns the SHA-256 of a file.
func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// ErrChecksum is wrapped by the error of a plugin binary whose SHA-256 is
// not the one configured.
var ErrChecksum = errors.New("sha256 mismatch")

func checksumError(path string, want []byte) error {
	got, err := fileSHA256(path)
	if err != nil {
		return fmt.Errorf("%w for plugin %s: %v", ErrChecksum, path, err)
	}
	return fmt.Errorf("%w: plugin %s has SHA-256 %s, the pipeline expects %s; refusing to start it",
		ErrChecksum, path, hex.EncodeToString(got), hex.EncodeToString(want))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
