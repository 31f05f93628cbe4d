package syslog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// batch is one Write call's encoded messages: buf holds them back to back
// (without framing), msgs says where each one is and which event it came from.
type batch struct {
	buf  []byte
	msgs []msgRef
	out  []byte // framing scratch for stream transports
}

type msgRef struct {
	start, end int
	event      int // index into the events given to Write
}

func (b *batch) msg(i int) []byte { return b.buf[b.msgs[i].start:b.msgs[i].end] }

// sendResult is what a transport reports for a batch.
type sendResult struct {
	// sent counts the messages delivered (and acknowledged where the
	// transport has acknowledgements).
	sent, bytes int
	// failed lists positions in batch.msgs that were not delivered; nil
	// with a non-nil err means all of them.
	failed []int
	// rejected maps positions the receiver refused to its reason (RELP 500).
	rejected map[int]string
}

// transport is one live connection. Methods are called with the output's
// lock held, never concurrently.
type transport interface {
	// send delivers the batch; a non-nil error means the connection is
	// unusable and will be closed.
	send(ctx context.Context, b *batch) (sendResult, error)
	close()
}

// clientCertSettle is how long a new TLS connection whose server asked for
// a client certificate is watched for a refusal before it is used.
const clientCertSettle = 500 * time.Millisecond

// aLongTimeAgo is a deadline in the past, to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// interruptOnDone makes blocked I/O on c fail once ctx is done. The
// returned stop reports false when the interruption already happened, in
// which case c's deadlines are no longer trustworthy.
func interruptOnDone(ctx context.Context, c net.Conn) func() bool {
	return context.AfterFunc(ctx, func() { _ = c.SetDeadline(aLongTimeAgo) })
}

// dialer opens transports for one target.
type dialer struct {
	tgt            target
	tlsConf        *tls.Config
	connectTimeout time.Duration
	writeTimeout   time.Duration
	octetCounting  bool
	relpWindow     int
}

func (d *dialer) dial(ctx context.Context) (transport, error) {
	ctx, cancel := context.WithTimeout(ctx, d.connectTimeout)
	defer cancel()
	nd := &net.Dialer{KeepAlive: 30 * time.Second}
	switch d.tgt.scheme {
	case "udp":
		c, err := nd.DialContext(ctx, "udp", d.tgt.host)
		if err != nil {
			return nil, fmt.Errorf("connect to udp://%s: %w", d.tgt.host, err)
		}
		return &udpConn{c: c, writeTimeout: d.writeTimeout}, nil
	case "tcp":
		c, err := nd.DialContext(ctx, "tcp", d.tgt.host)
		if err != nil {
			return nil, fmt.Errorf("connect to tcp://%s: %w", d.tgt.host, err)
		}
		return newStreamConn(c, d.octetCounting, d.writeTimeout), nil
	case "tls":
		conf := d.tlsConf.Clone()
		certs := conf.Certificates
		conf.Certificates = nil
		var asked atomic.Bool
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked.Store(true)
			if len(certs) > 0 {
				return &certs[0], nil
			}
			return &tls.Certificate{}, nil // none: the server decides
		}
		td := &tls.Dialer{NetDialer: nd, Config: conf}
		c, err := td.DialContext(ctx, "tcp", d.tgt.host)
		if err != nil {
			return nil, fmt.Errorf("connect to tls://%s: %w", d.tgt.host, err)
		}
		s := newStreamConn(c, d.octetCounting, d.writeTimeout)
		if asked.Load() {
			// In TLS 1.3 the client's handshake ends before the server has
			// checked the client certificate; a refusal arrives as an alert
			// just after. Wait for it rather than write a batch into a
			// connection that is about to be reset.
			t := time.NewTimer(clientCertSettle)
			defer t.Stop()
			select {
			case <-s.dead:
				s.close()
				return nil, fmt.Errorf("connect to tls://%s: the receiver closed the connection after asking for a client certificate (check tls.cert_file and tls.key_file): %w", d.tgt.host, s.deadErr)
			case <-t.C:
			case <-ctx.Done():
				s.close()
				return nil, fmt.Errorf("connect to tls://%s: %w", d.tgt.host, ctx.Err())
			}
		}
		return s, nil
	case "relp":
		c, err := nd.DialContext(ctx, "tcp", d.tgt.host)
		if err != nil {
			return nil, fmt.Errorf("connect to relp://%s: %w", d.tgt.host, err)
		}
		r, err := openRELP(ctx, c, d.relpWindow, d.writeTimeout)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("open relp://%s: %w", d.tgt.host, err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("unsupported scheme %q", d.tgt.scheme)
}

// buildTLS loads the CA bundle and client certificate.
func buildTLS(c *TLSConfig, tgt target) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in, documented as test-only
	if conf.ServerName == "" {
		host, _, err := net.SplitHostPort(tgt.host)
		if err != nil {
			return nil, fmt.Errorf("address: %w", err)
		}
		conf.ServerName = host
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", c.CAFile)
		}
		conf.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// streamConn is syslog over TCP or TLS (RFC 6587 / RFC 5425). The receiver
// never writes, so a reader goroutine that sees EOF or an error is how a
// closed or reset connection is noticed before the next batch is written
// into the void.
type streamConn struct {
	c             net.Conn
	octetCounting bool
	writeTimeout  time.Duration
	dead          chan struct{}
	deadErr       error // set before dead is closed
	closeOnce     sync.Once
}

func newStreamConn(c net.Conn, octetCounting bool, writeTimeout time.Duration) *streamConn {
	s := &streamConn{c: c, octetCounting: octetCounting, writeTimeout: writeTimeout, dead: make(chan struct{})}
	go s.watch()
	return s
}

func (s *streamConn) watch() {
	_, err := io.Copy(io.Discard, s.c)
	if err == nil {
		err = io.EOF
	}
	s.deadErr = err
	close(s.dead)
}

func (s *streamConn) broken() error {
	select {
	case <-s.dead:
		return fmt.Errorf("connection closed by the receiver: %w", s.deadErr)
	default:
		return nil
	}
}

// writeChunk is how much is written under one write deadline.
const writeChunk = 256 << 10

func (s *streamConn) send(ctx context.Context, b *batch) (sendResult, error) {
	if err := s.broken(); err != nil {
		return sendResult{}, err
	}
	out := b.out[:0]
	for i := range b.msgs {
		m := b.msg(i)
		if s.octetCounting {
			out = strconv.AppendInt(out, int64(len(m)), 10)
			out = append(out, ' ')
			out = append(out, m...)
		} else {
			out = append(out, m...)
			out = append(out, '\n')
		}
	}
	b.out = out
	stop := interruptOnDone(ctx, s.c)
	for len(out) > 0 {
		n := min(len(out), writeChunk)
		if err := s.c.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil {
			stop()
			return sendResult{}, fmt.Errorf("set write deadline: %w", err)
		}
		w, err := s.c.Write(out[:n])
		out = out[w:]
		if err != nil {
			stop()
			if ctx.Err() != nil {
				return sendResult{}, fmt.Errorf("write: %w", ctx.Err())
			}
			return sendResult{}, fmt.Errorf("write: %w", err)
		}
	}
	if !stop() {
		return sendResult{}, fmt.Errorf("write interrupted: %w", context.Cause(ctx))
	}
	// A receiver that died while we wrote may have lost the batch: resend.
	if err := s.broken(); err != nil {
		return sendResult{}, err
	}
	return sendResult{sent: len(b.msgs), bytes: len(b.out)}, nil
}

func (s *streamConn) close() {
	s.closeOnce.Do(func() { _ = s.c.Close() })
}

// udpConn sends one message per datagram. Nothing tells it whether they
// arrived; a refused port (ICMP) surfaces as an error on a later write.
type udpConn struct {
	c            net.Conn
	writeTimeout time.Duration
}

func (u *udpConn) send(ctx context.Context, b *batch) (sendResult, error) {
	stop := interruptOnDone(ctx, u.c)
	defer stop()
	res := sendResult{}
	for i := range b.msgs {
		if i%64 == 0 {
			if err := u.c.SetWriteDeadline(time.Now().Add(u.writeTimeout)); err != nil {
				return res, fmt.Errorf("set write deadline: %w", err)
			}
		}
		m := b.msg(i)
		if _, err := u.c.Write(m); err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return sendResult{}, fmt.Errorf("send datagram: %w", err)
		}
		res.sent++
		res.bytes += len(m)
	}
	return res, nil
}

func (u *udpConn) close() { _ = u.c.Close() }

var errClosed = errors.New("output is closed")
