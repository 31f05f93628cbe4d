package syslog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// RELP (the Reliable Event Logging Protocol, as spoken by rsyslog's
// imrelp/librelp): every frame is
//
//	TXNR SP COMMAND SP DATALEN [SP DATA] LF
//
// The client opens a session with an "open" command carrying its offers
// (relp_version, relp_software, commands=syslog), sends each message as a
// "syslog" command and gets a "rsp" frame per command, in order, whose data
// starts with "200 OK" (accepted) or another status (refused). Several
// commands may be outstanding (the window). The server may announce that it
// closes the session with the hint "0 serverclose 0".

const (
	relpMaxTxnr     = 999_999_999
	relpMaxRspData  = 128 << 10
	relpSoftware    = "auditforwarder,1,https://github.com/auditforwarder/forwarder"
	relpCloseWait   = 2 * time.Second
	relpWriteBuffer = 64 << 10
)

// relpFrame is one parsed frame.
type relpFrame struct {
	txnr int
	cmd  string
	data []byte
}

// errRELPFrame marks a malformed frame.
var errRELPFrame = errors.New("malformed relp frame")

// readRELPFrame reads one frame. Data longer than maxData is refused.
func readRELPFrame(r *bufio.Reader, maxData int) (relpFrame, error) {
	var f relpFrame
	txnr, sep, err := readRELPNumber(r)
	if err != nil {
		return f, err
	}
	if sep != ' ' {
		return f, fmt.Errorf("%w: no command after txnr", errRELPFrame)
	}
	f.txnr = txnr
	var cmd [32]byte
	n := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return f, unexpectedEOF(err)
		}
		if c == ' ' {
			break
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') || n == len(cmd) {
			return f, fmt.Errorf("%w: bad command", errRELPFrame)
		}
		cmd[n] = c
		n++
	}
	if n == 0 {
		return f, fmt.Errorf("%w: empty command", errRELPFrame)
	}
	f.cmd = string(cmd[:n])
	datalen, sep, err := readRELPNumber(r)
	if err != nil {
		return f, unexpectedEOF(err)
	}
	if datalen > maxData {
		return f, fmt.Errorf("%w: data length %d exceeds %d", errRELPFrame, datalen, maxData)
	}
	if sep == '\n' {
		if datalen != 0 {
			return f, fmt.Errorf("%w: data missing", errRELPFrame)
		}
		return f, nil
	}
	if sep != ' ' {
		return f, fmt.Errorf("%w: bad separator after data length", errRELPFrame)
	}
	f.data = make([]byte, datalen)
	if _, err := io.ReadFull(r, f.data); err != nil {
		return f, unexpectedEOF(err)
	}
	c, err := r.ReadByte()
	if err != nil {
		return f, unexpectedEOF(err)
	}
	if c != '\n' {
		return f, fmt.Errorf("%w: missing trailer", errRELPFrame)
	}
	return f, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readRELPNumber reads 1..9 digits and returns the byte that ended them.
func readRELPNumber(r *bufio.Reader) (int, byte, error) {
	n, digits := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if digits > 0 {
				err = unexpectedEOF(err)
			}
			return 0, 0, err
		}
		if c < '0' || c > '9' {
			if digits == 0 {
				return 0, 0, fmt.Errorf("%w: number expected", errRELPFrame)
			}
			return n, c, nil
		}
		if digits == 9 {
			return 0, 0, fmt.Errorf("%w: number too long", errRELPFrame)
		}
		n = n*10 + int(c-'0')
		digits++
	}
}

// appendRELPFrame appends a frame.
func appendRELPFrame(dst []byte, txnr int, cmd string, data []byte) []byte {
	dst = strconv.AppendInt(dst, int64(txnr), 10)
	dst = append(dst, ' ')
	dst = append(dst, cmd...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(data)), 10)
	if len(data) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, data...)
	}
	return append(dst, '\n')
}

// parseRsp splits a rsp frame's data into status, human text and the
// command data after the first LF.
func parseRsp(data []byte) (code int, text string, rest []byte, err error) {
	line := data
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		line, rest = data[:i], data[i+1:]
	}
	if len(line) < 3 {
		return 0, "", nil, fmt.Errorf("%w: short rsp %q", errRELPFrame, line)
	}
	code, err = strconv.Atoi(string(line[:3]))
	if err != nil {
		return 0, "", nil, fmt.Errorf("%w: rsp status %q", errRELPFrame, line[:3])
	}
	text = string(bytes.TrimSpace(line[3:]))
	return code, text, rest, nil
}

// quickAckReader re-arms TCP_QUICKACK after every read (see setQuickAck).
type quickAckReader struct{ c net.Conn }

func (q quickAckReader) Read(p []byte) (int, error) {
	n, err := q.c.Read(p)
	setQuickAck(q.c)
	return n, err
}

// relpRsp is a response delivered by the reader goroutine.
type relpRsp struct {
	txnr int
	code int
	text string
}

// relpConn is an open RELP session.
type relpConn struct {
	c            net.Conn
	br           *bufio.Reader
	bw           *bufio.Writer
	window       int
	writeTimeout time.Duration
	txnr         int // last txnr used

	rsps      chan relpRsp
	dead      chan struct{} // closed when the reader stops
	deadErr   error         // set before dead is closed
	quit      chan struct{} // closed by close()
	closeOnce sync.Once
	failed    bool // a send failed; the session is not closed politely
	frame     []byte
}

// openRELP performs the open handshake on c.
func openRELP(ctx context.Context, c net.Conn, window int, writeTimeout time.Duration) (*relpConn, error) {
	r := &relpConn{
		c: c, br: bufio.NewReader(quickAckReader{c}), bw: bufio.NewWriterSize(c, relpWriteBuffer),
		window: window, writeTimeout: writeTimeout,
		rsps: make(chan relpRsp, window), dead: make(chan struct{}), quit: make(chan struct{}),
	}
	deadline := time.Now().Add(writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := interruptOnDone(ctx, c)
	defer stop()
	setQuickAck(c)
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	offers := "relp_version=0\nrelp_software=" + relpSoftware + "\ncommands=syslog"
	txnr := r.nextTxnr()
	if _, err := c.Write(appendRELPFrame(nil, txnr, "open", []byte(offers))); err != nil {
		return nil, fmt.Errorf("send open: %w", err)
	}
	f, err := readRELPFrame(r.br, relpMaxRspData)
	if err != nil {
		return nil, fmt.Errorf("read open response: %w", err)
	}
	if f.cmd != "rsp" || f.txnr != txnr {
		return nil, fmt.Errorf("%w: expected rsp to open (txnr %d), got %q txnr %d", errRELPFrame, txnr, f.cmd, f.txnr)
	}
	code, text, rest, err := parseRsp(f.data)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("server refused the session: %d %s", code, text)
	}
	if !offersSyslog(rest) {
		return nil, fmt.Errorf("server does not offer the syslog command (offers %q)", rest)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	go r.read()
	return r, nil
}

// offersSyslog reports whether the server's offers include commands=…syslog….
func offersSyslog(offers []byte) bool {
	for _, line := range bytes.Split(offers, []byte{'\n'}) {
		name, val, _ := bytes.Cut(bytes.TrimSpace(line), []byte{'='})
		if string(name) != "commands" {
			continue
		}
		for _, c := range bytes.Split(val, []byte{','}) {
			if string(bytes.TrimSpace(c)) == "syslog" {
				return true
			}
		}
	}
	return false
}

func (r *relpConn) nextTxnr() int {
	r.txnr++
	if r.txnr > relpMaxTxnr {
		r.txnr = 1
	}
	return r.txnr
}

// read delivers responses until the connection ends.
func (r *relpConn) read() {
	var err error
	defer func() {
		r.deadErr = err
		close(r.dead)
	}()
	for {
		var f relpFrame
		f, err = readRELPFrame(r.br, relpMaxRspData)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("connection closed by the server")
			}
			return
		}
		switch {
		case f.cmd == "serverclose" && f.txnr == 0:
			err = errors.New("server closed the session (serverclose)")
			return
		case f.cmd == "rsp":
			code, text, _, perr := parseRsp(f.data)
			if perr != nil {
				err = perr
				return
			}
			select {
			case r.rsps <- relpRsp{txnr: f.txnr, code: code, text: text}:
			case <-r.quit:
				err = errClosed
				return
			}
		default:
			err = fmt.Errorf("%w: unexpected %q from server", errRELPFrame, f.cmd)
			return
		}
	}
}

func (r *relpConn) broken() error {
	select {
	case <-r.dead:
		return fmt.Errorf("relp session lost: %w", r.deadErr)
	default:
		return nil
	}
}

// send pipelines the batch through the window and waits for every
// response. Messages without a 200 response are reported in failed (or
// rejected, when the server answered with an error status).
func (r *relpConn) send(ctx context.Context, b *batch) (res sendResult, err error) {
	if err := r.broken(); err != nil {
		return sendResult{}, err
	}
	n := len(b.msgs)
	acked := make([]bool, n)
	pending := make(map[int]int, r.window) // txnr → position in b.msgs
	defer func() {
		if err != nil {
			r.failed = true // responses may still be in flight: no polite close
		}
		if err != nil || len(res.rejected) > 0 {
			for i, ok := range acked {
				if !ok {
					if _, rej := res.rejected[i]; !rej {
						res.failed = append(res.failed, i)
					}
				}
			}
		}
	}()
	stop := interruptOnDone(ctx, r.c)
	defer stop()
	timer := time.NewTimer(r.writeTimeout)
	defer timer.Stop()
	next := 0
	low := r.window - 1 // refill as soon as a slot is free: responses are drained first, so writes still batch
	for next < n || len(pending) > 0 {
		if next < n && len(pending) <= low {
			if err := r.c.SetWriteDeadline(time.Now().Add(r.writeTimeout)); err != nil {
				return res, err
			}
			for next < n && len(pending) < r.window {
				txnr := r.nextTxnr()
				r.frame = appendRELPFrame(r.frame[:0], txnr, "syslog", b.msg(next))
				if _, err := r.bw.Write(r.frame); err != nil {
					return res, r.ioErr(ctx, "send", err)
				}
				pending[txnr] = next
				next++
			}
			if err := r.bw.Flush(); err != nil {
				return res, r.ioErr(ctx, "send", err)
			}
			timer.Reset(r.writeTimeout)
		}
		select {
		case rsp := <-r.rsps:
			if err := r.handle(rsp, pending, acked, b, &res); err != nil {
				return res, err
			}
			// Take every response already there before writing again.
			for drained := false; !drained; {
				select {
				case rsp := <-r.rsps:
					if err := r.handle(rsp, pending, acked, b, &res); err != nil {
						return res, err
					}
				default:
					drained = true
				}
			}
			timer.Reset(r.writeTimeout)
		case <-r.dead:
			// Responses that arrived before the end still count.
			for {
				select {
				case rsp := <-r.rsps:
					_ = r.handle(rsp, pending, acked, b, &res)
					continue
				default:
				}
				break
			}
			return res, r.broken()
		case <-ctx.Done():
			return res, fmt.Errorf("waiting for relp acknowledgements: %w", ctx.Err())
		case <-timer.C:
			return res, fmt.Errorf("no relp acknowledgement within %s (%d outstanding)", r.writeTimeout, len(pending))
		}
	}
	return res, nil
}

func (r *relpConn) handle(rsp relpRsp, pending map[int]int, acked []bool, b *batch, res *sendResult) error {
	pos, ok := pending[rsp.txnr]
	if !ok {
		return fmt.Errorf("%w: rsp for unknown txnr %d", errRELPFrame, rsp.txnr)
	}
	delete(pending, rsp.txnr)
	if rsp.code == 200 {
		acked[pos] = true
		res.sent++
		res.bytes += b.msgs[pos].end - b.msgs[pos].start
		return nil
	}
	if res.rejected == nil {
		res.rejected = map[int]string{}
	}
	res.rejected[pos] = strconv.Itoa(rsp.code) + " " + rsp.text
	return nil
}

func (r *relpConn) ioErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if b := r.broken(); b != nil {
		return b
	}
	return fmt.Errorf("%s: %w", op, err)
}

// close ends the session politely when it is healthy (close command, wait
// briefly for its rsp), then closes the connection.
func (r *relpConn) close() {
	r.closeOnce.Do(func() {
		if !r.failed && r.broken() == nil {
			_ = r.c.SetWriteDeadline(time.Now().Add(relpCloseWait))
			txnr := r.nextTxnr()
			if _, err := r.c.Write(appendRELPFrame(nil, txnr, "close", nil)); err == nil {
				t := time.NewTimer(relpCloseWait)
			wait:
				for {
					select {
					case rsp := <-r.rsps:
						if rsp.txnr == txnr {
							break wait
						}
					case <-r.dead:
						break wait
					case <-t.C:
						break wait
					}
				}
				t.Stop()
			}
		}
		close(r.quit)
		_ = r.c.Close()
	})
}
