package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Discover runs every executable file of dir and asks it which components
// it offers. The components come back as factories that join the registry
// beside the built-ins (a name clash is the registry's error).
//
// Hidden files, directories and files without an execute bit are skipped;
// an executable that is not a working plugin is an error, since the user
// put it there to be loaded. Each binary's SHA-256 is taken at discovery
// and checked again before every start, so the binary that runs is the
// one that was described.
func Discover(dir string) ([]plugins.Factory, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin_dir: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out []plugins.Factory
	var errs []error
	for _, name := range names {
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			continue
		}
		fs, err := DescribeBinary(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin_dir: %w", err))
			continue
		}
		out = append(out, fs...)
	}
	return out, errors.Join(errs...)
}

// DescribeBinary runs one plugin binary and returns a factory for each
// component it offers.
func DescribeBinary(path string) ([]plugins.Factory, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	p, err := launch(launchConfig{path: path, sha256: sum})
	if err != nil {
		return nil, err
	}
	defer p.kill()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStartTimeout+30*time.Second)
	defer cancel()
	infos, err := p.rpc.Describe(ctx)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	if len(infos) == 0 {
		return nil, fmt.Errorf("plugin %s offers no components", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	out := make([]plugins.Factory, 0, len(infos))
	for _, in := range infos {
		if !plugins.ValidTypeName(in.Type) {
			return nil, fmt.Errorf("plugin %s: component type %q is not a valid type name", path, in.Type)
		}
		out = append(out, &externalFactory{path: abs, sum: sum, info: in, startTimeout: DefaultStartTimeout})
	}
	return out, nil
}
