package host

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the plugin when the forwarder dies,
// even by SIGKILL, so no orphan outlives it. (Pdeathsig follows the thread
// that started the child; should that thread ever exit first, the plugin
// is killed early and the supervisor restarts it.)
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
