package rpc

import (
	"context"
	"net"
	"path/filepath"
	"syscall"
	"testing"
)

// sndbuf reads a connection's SO_SNDBUF.
func sndbuf(t *testing.T, c net.Conn) int {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	_ = raw.Control(func(fd uintptr) {
		n, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	return n
}

func TestDialerSizesSocketBuffers(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "plugin.sock")
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Skip(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					defer c.Close()
				}
			}()
			plain, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			c, err := Dialer(ln.Addr())(context.Background(), "ignored")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The kernel may cap the size (net.core.wmem_max), never
			// below the default.
			if got, def := sndbuf(t, c), sndbuf(t, plain); got < def {
				t.Errorf("SO_SNDBUF %d, below the default %d", got, def)
			} else {
				t.Logf("SO_SNDBUF %d (default %d)", got, def)
			}
		})
	}
}
