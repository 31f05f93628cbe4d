//go:build !linux

package host

import "os/exec"

// setProcAttr does nothing here; the SDK's parent watch ends orphans.
func setProcAttr(*exec.Cmd) {}
