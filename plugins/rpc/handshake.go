package rpc

import (
	"context"
	"net"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ProtocolVersion is the version of plugin.proto this package speaks. It is
// negotiated through go-plugin's VersionedPlugins: the host offers every
// version it supports, the plugin picks the highest it also serves.
const ProtocolVersion = 1

// PluginName is the name the plugin set is dispensed under.
const PluginName = "forwarder"

// Handshake is shared by the host and every plugin.
//
// The magic cookie is a UX feature, not a security one: it lets a plugin
// binary started by hand print "this binary is a plugin" instead of waiting
// for a handshake that never comes. It is fixed forever; protocol changes are
// expressed through ProtocolVersion and VersionedPlugins, never through the
// cookie. Integrity is what the optional sha256 check is for, and AutoMTLS
// keeps other local processes off the plugin's socket.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "FORWARDER_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "2f6c1b0e9a4d4c7e8b3f5a1d6e0c9b72-audit-forwarder",
}

// MaxMessageBytes bounds one gRPC message in both directions, on both sides.
//
// gRPC's default receive limit is 4 MiB, which a single batch of large audit
// events (NHN's request/response bodies) can exceed; an unbounded limit would
// let a corrupt length prefix or a runaway plugin make the other side
// allocate without bound. 64 MiB holds a batch of 1000 events of 64 KiB, and
// the host additionally splits batches into chunks of at most ChunkBytes, so
// a transform may grow its events several times before a response hits it.
const MaxMessageBytes = 64 << 20

// ChunkBytes is the encoded size above which the host splits one
// Process or Write call into several requests.
const ChunkBytes = 8 << 20

// PluginSets returns the versioned plugin sets. server is nil on the host.
func PluginSets(server *Server) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {PluginName: &GRPCPlugin{Impl: server}},
	}
}

// Transport tuning, on both sides. A batch is hundreds of KiB and the
// peer is a local process, so flow control should never make the sender
// wait for a window update mid-message (gRPC's default window is 64 KiB,
// grown only by its bandwidth estimator), and socket reads and writes
// should move a large part of a message each rather than 32 KiB.
const (
	streamWindow = ChunkBytes
	connWindow   = 2 * ChunkBytes
	ioBufferSize = 256 << 10
)

// ServerOptions are the gRPC server options of a plugin process.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.ReadBufferSize(ioBufferSize),
		grpc.WriteBufferSize(ioBufferSize),
		grpc.ForceServerCodecV2(wireCodec{}),
	}
}

// DialOptions are the gRPC dial options of the host.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes),
			grpc.MaxCallSendMsgSize(MaxMessageBytes),
			grpc.ForceCodecV2(wireCodec{}),
		),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithReadBufferSize(ioBufferSize),
		grpc.WithWriteBufferSize(ioBufferSize),
	}
}

// socketBuffer is the send and receive buffer the host asks for on its
// connection to a plugin. A batch is hundreds of KiB: with the usual
// default of 208 KiB, the host's writer blocks on a full socket mid-batch
// and waits for the plugin to read, and both sides pay a wakeup per
// refill; with room for a whole batch, the host writes it in one go while
// the plugin reads at its pace. The kernel caps it (net.core.wmem_max and
// rmem_max): where those are at their defaults, this changes nothing.
const socketBuffer = 4 << 20

// Dialer returns the host's dialer of the plugin listening at addr, as
// go-plugin's own (a plain dial; TLS comes on top) but with room for a
// batch in the socket's buffers (see socketBuffer).
func Dialer(addr net.Addr) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer // keep-alive on, as go-plugin sets it on TCP
		conn, err := d.DialContext(ctx, addr.Network(), addr.String())
		if err != nil {
			return nil, err
		}
		if c, ok := conn.(interface {
			SetReadBuffer(int) error
			SetWriteBuffer(int) error
		}); ok {
			// Best effort: a refused size leaves the default.
			_ = c.SetWriteBuffer(socketBuffer)
			_ = c.SetReadBuffer(socketBuffer)
		}
		return conn, nil
	}
}

// GRPCPlugin is the go-plugin glue: it registers the services of Server in
// a plugin process and returns a *Client on the host.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl serves the plugin's factories; nil on the host.
	Impl *Server
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterComponentServer(s, p.Impl)
	RegisterSourceServer(s, p.Impl)
	RegisterTransformServer(s, p.Impl)
	RegisterOutputServer(s, p.Impl)
	return nil
}

// GRPCClient implements plugin.GRPCPlugin. ctx ends when the plugin
// process exits; Client.Done reports it.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(ctx, c), nil
}

// chunkBytes is ChunkBytes; tests lower it.
var chunkBytes = ChunkBytes
