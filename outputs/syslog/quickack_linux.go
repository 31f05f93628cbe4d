package syslog

import (
	"net"
	"syscall"
)

// setQuickAck asks Linux to acknowledge the next incoming segments at once
// instead of delaying the ACK (up to 40 ms). RELP servers such as librelp
// send each response as a small segment with Nagle's algorithm on: the last
// responses of a batch would otherwise wait for our delayed ACK, costing
// 40 ms per batch. The flag does not stick, so it is set after every read.
func setQuickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
