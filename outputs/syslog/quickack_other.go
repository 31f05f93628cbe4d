//go:build !linux

package syslog

import "net"

// setQuickAck is a no-op outside Linux.
func setQuickAck(net.Conn) {}
