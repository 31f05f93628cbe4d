package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/auditforwarder/forwarder/plugins"
)

// ErrCrashed is wrapped by every error that means the plugin process is
// gone: the connection failed (gRPC Unavailable), or was cut while the host
// was not cancelling the call.
var ErrCrashed = errors.New("plugin crashed")

// Info describes one component a plugin offers.
type Info struct {
	Kind        plugins.Kind
	Type        string
	Description string
	Sample      []byte
}

// CreateSettings are the parts of plugins.Settings that cross the wire.
type CreateSettings struct {
	ID      string
	DataDir string
	Once    bool
}

// Client is the host side of the protocol for one plugin process. It does
// not restart anything: a call that fails because the process is gone
// returns an error wrapping ErrCrashed, and supervision is the caller's.
type Client struct {
	comp ComponentClient
	src  SourceClient
	tr   TransformClient
	out  OutputClient
	done <-chan struct{}
	// offer is the Feature bits this host announces in Create (tests clear
	// them to play a host built before they existed); features are those
	// the plugin answered with, learnt at Create.
	offer    uint32
	features atomic.Uint32
	// parallel holds the instances that are ParallelTransforms.
	parallel sync.Map // uint64 → struct{}
	// shared is the region shared with the plugin process, or nil.
	shared *Region
}

// UseShared offers the plugin the region r, which its process inherited
// (FEATURE_SHARED_MEMORY); call it before Create. Requests whose parts
// fit in r then carry them there.
func (c *Client) UseShared(r *Region) {
	c.shared = r
	c.offer |= FeatureShared
}

// SharedMemory reports whether batches may cross in the shared region:
// this host offered one (UseShared) and the plugin mapped it.
func (c *Client) SharedMemory() bool {
	return c.shared != nil && c.features.Load()&FeatureShared != 0
}

// placeParts puts a request's parts in the shared region when the plugin
// takes them there and they fit (shared is set), else in the message
// (packed is set). done gives the room back: answered says the plugin
// answered, so it is done reading; after a failed call it may not be, and
// the room is never reused.
func (c *Client) placeParts(data [][]byte) (packed [][]byte, shared *SharedParts, done func(answered bool)) {
	r := c.shared
	if !c.SharedMemory() {
		return data, nil, func(bool) {}
	}
	total := 0
	for _, p := range data {
		total += len(p)
	}
	off, mem, ok := r.alloc(total)
	if !ok {
		return data, nil, func(bool) {}
	}
	shared = &SharedParts{Offset: uint64(off), Sizes: make([]uint32, len(data))}
	at := 0
	for i, p := range data {
		at += copy(mem[at:], p)
		shared.Sizes[i] = uint32(len(p))
	}
	return nil, shared, func(answered bool) { r.release(off, total, answered) }
}

// NewClient returns a Client over conn. done (may be nil) ends when the
// plugin process exits.
func NewClient(done context.Context, conn grpc.ClientConnInterface) *Client {
	c := &Client{comp: NewComponentClient(conn), src: NewSourceClient(conn), tr: NewTransformClient(conn), out: NewOutputClient(conn), offer: supportedFeatures}
	if done != nil {
		c.done = done.Done()
	}
	return c
}

// Done is closed when the plugin process has exited (nil when unknown).
func (c *Client) Done() <-chan struct{} { return c.done }

func (c *Client) exited() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// transportErr classifies a gRPC error: the caller's cancellation, a
// crash, or a protocol failure.
func (c *Client) transportErr(ctx context.Context, method string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("plugin %s: %w", method, ctxErr)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled:
		return fmt.Errorf("%w (%s: %s)", ErrCrashed, method, status.Convert(err).Message())
	case codes.ResourceExhausted:
		return plugins.Permanent(fmt.Errorf("plugin %s: message above the %d MiB limit: %s", method, MaxMessageBytes>>20, status.Convert(err).Message()))
	}
	if c.exited() {
		return fmt.Errorf("%w (%s: %s)", ErrCrashed, method, status.Convert(err).Message())
	}
	return fmt.Errorf("plugin %s: %w", method, err)
}

// Describe lists the components the plugin offers.
func (c *Client) Describe(ctx context.Context) ([]Info, error) {
	resp, err := c.comp.Describe(ctx, &DescribeRequest{})
	if err != nil {
		return nil, c.transportErr(ctx, "Describe", err)
	}
	out := make([]Info, 0, len(resp.Components))
	for _, ci := range resp.Components {
		out = append(out, Info{Kind: decodeKind(ci.Kind), Type: ci.Type, Description: ci.Description, Sample: ci.SampleConfig})
	}
	return out, nil
}

// Validate has the plugin decode and validate a config block (JSON). A
// configuration problem comes back as joined *plugins.FieldError values
// with paths relative to the block; secrets are the values of its Secret
// fields.
func (c *Client) Validate(ctx context.Context, kind plugins.Kind, typ string, config []byte) (secrets []string, err error) {
	resp, err := c.comp.Validate(ctx, &ValidateRequest{Kind: encodeKind(kind), Type: typ, ConfigJson: config})
	if err != nil {
		return nil, c.transportErr(ctx, "Validate", err)
	}
	return resp.Secrets, DecodeError(resp.Error)
}

// Create creates a component instance in the plugin.
func (c *Client) Create(ctx context.Context, kind plugins.Kind, typ string, config []byte, set CreateSettings) (uint64, error) {
	resp, err := c.comp.Create(ctx, &CreateRequest{Kind: encodeKind(kind), Type: typ, ConfigJson: config,
		Settings: &Settings{Id: set.ID, DataDir: set.DataDir, Once: set.Once}, Features: c.offer})
	if err != nil {
		return 0, c.transportErr(ctx, "Create", err)
	}
	if resp.Error != nil {
		return 0, DecodeError(resp.Error)
	}
	// A plugin built before features existed answers none: it gets the
	// original encoding.
	c.features.Store(resp.Features & c.offer)
	if resp.Parallel {
		c.parallel.Store(resp.Instance, struct{}{})
	}
	return resp.Instance, nil
}

// Parallel reports whether instance inst is a transform that takes
// several Process calls at once (CreateResponse.parallel).
func (c *Client) Parallel(inst uint64) bool {
	_, ok := c.parallel.Load(inst)
	return ok
}

// Start starts an instance.
func (c *Client) Start(ctx context.Context, inst uint64) error {
	resp, err := c.comp.Start(ctx, &InstanceRequest{Instance: inst})
	if err != nil {
		return c.transportErr(ctx, "Start", err)
	}
	return DecodeError(resp.Error)
}

// Close closes an instance.
func (c *Client) Close(ctx context.Context, inst uint64) error {
	resp, err := c.comp.Close(ctx, &InstanceRequest{Instance: inst})
	if err != nil {
		return c.transportErr(ctx, "Close", err)
	}
	return DecodeError(resp.Error)
}

// WatchStatus calls report with every status change of an instance until
// the instance is closed (nil), ctx ends, or the plugin crashes.
func (c *Client) WatchStatus(ctx context.Context, inst uint64, report func(error)) error {
	stream, err := c.comp.WatchStatus(ctx, &InstanceRequest{Instance: inst})
	if err != nil {
		return c.transportErr(ctx, "WatchStatus", err)
	}
	for {
		up, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.OK {
				return nil
			}
			return c.transportErr(ctx, "WatchStatus", err)
		}
		if up.Ready {
			report(nil)
		} else {
			report(remoteError(up.Message))
		}
	}
}

// Run runs a remote source: every batch the plugin emits is decoded and
// handed to emit (which blocks for backpressure) before the plugin's own
// Emit returns. It returns the source's error, nil when ctx ends, or a
// crash.
func (c *Client) Run(ctx context.Context, inst uint64, from plugins.Checkpoint, emit plugins.Emit) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.src.Run(ctx)
	if err != nil {
		return c.runErr(ctx, err)
	}
	start := &RunStart{Instance: inst, HasCheckpoint: from != nil, Checkpoint: from}
	if err := stream.Send(&RunRequest{Msg: &RunRequest_Start{Start: start}}); err != nil {
		return c.runErr(ctx, err)
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return c.runErr(ctx, err)
		}
		switch m := msg.Msg.(type) {
		case *RunResponse_Done:
			return DecodeError(m.Done.Error)
		case *RunResponse_Batch:
			var events []*plugins.Event
			var err error
			if len(m.Batch.Packed) > 0 {
				events, err = unpackEvents(m.Batch.Packed, binaryDocs(c.features.Load()), newDecoders(len(m.Batch.Packed)))
			} else {
				events, err = decodeEvents(m.Batch.Events)
			}
			if err != nil {
				return plugins.Permanent(fmt.Errorf("plugin emitted an invalid batch: %w", err))
			}
			var cp plugins.Checkpoint
			if len(m.Batch.Checkpoint) > 0 {
				cp = plugins.Checkpoint(m.Batch.Checkpoint)
			}
			eerr := emit(ctx, plugins.Batch{Events: events, Checkpoint: cp})
			if err := stream.Send(&RunRequest{Msg: &RunRequest_Emitted{Emitted: &EmitResult{Seq: m.Batch.Seq, Error: EncodeError(eerr)}}}); err != nil {
				return c.runErr(ctx, err)
			}
		}
	}
}

func (c *Client) runErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w (Run: stream ended without a result)", ErrCrashed)
	}
	return c.transportErr(ctx, "Run", err)
}

// chunk is a run of events encoded into one request, with the caller's
// index of each.
type chunk struct {
	idx []int
	evs []*Event
}

// encodeChunks encodes events into chunks of at most ChunkBytes each
// (at least one event per chunk). Events above the message limit are
// reported in tooBig and left out.
func encodeChunks(events []*plugins.Event, bufs *buffers) (chunks []chunk, tooBig []int) {
	all := encodeEvents(events, bufs)
	cur := chunk{}
	size := 0
	for i, e := range all {
		n := len(e.Fields) + 64
		if n > MaxMessageBytes-1024 {
			tooBig = append(tooBig, i)
			continue
		}
		if len(cur.evs) > 0 && size+n > chunkBytes {
			chunks = append(chunks, cur)
			cur, size = chunk{}, 0
		}
		cur.idx = append(cur.idx, i)
		cur.evs = append(cur.evs, e)
		size += n
	}
	if len(cur.evs) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks, tooBig
}

// Process runs a remote transform. The events are the host's own: those
// the plugin modified in place come back as patches applied to them.
func (c *Client) Process(ctx context.Context, inst uint64, events []*plugins.Event) ([]*plugins.Event, error) {
	if len(events) == 0 {
		return events[:0:0], nil
	}
	if c.packed() {
		return c.processPacked(ctx, inst, events)
	}
	var bufs buffers
	defer bufs.release()
	chunks, tooBig := encodeChunks(events, &bufs)
	if len(tooBig) > 0 {
		return nil, plugins.Permanent(fmt.Errorf("event %d is above the plugin message limit of %d MiB", tooBig[0], MaxMessageBytes>>20))
	}
	out := make([]*plugins.Event, 0, len(events))
	for _, ch := range chunks {
		resp, err := c.tr.Process(ctx, &ProcessRequest{Instance: inst, Events: ch.evs})
		if err != nil {
			return nil, c.transportErr(ctx, "Process", err)
		}
		if resp.Error != nil {
			return nil, DecodeError(resp.Error)
		}
		in := events[ch.idx[0] : ch.idx[0]+len(ch.evs)]
		used := make([]bool, len(in))
		for _, oe := range resp.Events {
			ev, err := applyOut(in, used, oe)
			if err != nil {
				return nil, plugins.Permanent(fmt.Errorf("plugin returned an invalid event: %w", err))
			}
			out = append(out, ev)
		}
	}
	return out, nil
}

// applyOut rebuilds one returned event.
func applyOut(in []*plugins.Event, used []bool, oe *OutEvent) (*plugins.Event, error) {
	var ev *plugins.Event
	if oe.Origin == 0 {
		if oe.Meta == nil || !oe.Replace {
			return nil, errors.New("new event without its document and meta")
		}
		ev = &plugins.Event{}
	} else {
		i := int(oe.Origin) - 1
		if i >= len(in) || used[i] {
			return nil, fmt.Errorf("origin %d is out of range or used twice", oe.Origin)
		}
		used[i] = true
		ev = in[i]
	}
	if oe.Replace {
		o, err := plugins.ParseObject(oe.Fields)
		if err != nil {
			return nil, err
		}
		ev.Fields = o
	} else if len(oe.Patches) > 0 {
		if ev.Fields == nil {
			ev.Fields = plugins.NewObject(len(oe.Patches))
		}
		if err := applyPatches(ev.Fields, oe.Patches); err != nil {
			return nil, err
		}
	}
	if oe.Meta != nil {
		ev.Meta = decodeMeta(oe.Meta)
	}
	return ev, nil
}

// Write runs a remote output. Large batches go in several requests; when
// only some of them fail, the result is a *plugins.BatchError naming the
// failed events.
func (c *Client) Write(ctx context.Context, inst uint64, events []*plugins.Event) error {
	if len(events) == 0 {
		resp, err := c.out.Write(ctx, &WriteRequest{Instance: inst})
		if err != nil {
			return c.transportErr(ctx, "Write", err)
		}
		return DecodeError(resp.Error)
	}
	if c.packed() {
		return c.writePacked(ctx, inst, events)
	}
	var bufs buffers
	defer bufs.release()
	chunks, tooBig := encodeChunks(events, &bufs)
	if len(chunks) == 1 && len(tooBig) == 0 {
		resp, err := c.out.Write(ctx, &WriteRequest{Instance: inst, Events: chunks[0].evs})
		if err != nil {
			return c.transportErr(ctx, "Write", err)
		}
		return DecodeError(resp.Error)
	}
	be := tooBigErrors(tooBig)
	for _, ch := range chunks {
		resp, rerr := c.out.Write(ctx, &WriteRequest{Instance: inst, Events: ch.evs})
		if rerr != nil {
			// The transport failed (a crash): the whole batch is retried,
			// duplicates of the chunks already written being harmless.
			return c.transportErr(ctx, "Write", rerr)
		}
		if err := DecodeError(resp.Error); err != nil {
			addRequestError(be, err, ch.idx)
		}
	}
	return be.Err()
}

// tooBigErrors starts a Write's BatchError with the events too big to
// send: they fail permanently.
func tooBigErrors(tooBig []int) *plugins.BatchError {
	be := &plugins.BatchError{}
	for _, i := range tooBig {
		be.Add(i, plugins.Permanent(fmt.Errorf("event is above the plugin message limit of %d MiB", MaxMessageBytes>>20)))
	}
	return be
}

// addRequestError adds to be the error of one Write request carrying the
// events idx of the batch: its per-event failures, or err for them all.
func addRequestError(be *plugins.BatchError, err error, idx []int) {
	var sub *plugins.BatchError
	if errors.As(err, &sub) {
		for _, f := range sub.Failures {
			if f.Index >= 0 && f.Index < len(idx) {
				be.Add(idx[f.Index], f.Err)
			}
		}
		return
	}
	for _, i := range idx {
		be.Add(i, err)
	}
}

// packed reports whether the plugin takes packed batches.
func (c *Client) packed() bool { return c.features.Load()&FeaturePacked != 0 }

// processPacked is Process in the packed encoding.
func (c *Client) processPacked(ctx context.Context, inst uint64, events []*plugins.Event) ([]*plugins.Event, error) {
	var bufs buffers
	defer bufs.release()
	bin := binaryDocs(c.features.Load())
	parts, tooBig := packEvents(events, &bufs, bin)
	if len(tooBig) > 0 {
		return nil, plugins.Permanent(fmt.Errorf("event %d is above the plugin message limit of %d MiB", tooBig[0], MaxMessageBytes>>20))
	}
	out := make([]*plugins.Event, 0, len(events))
	for _, req := range groupParts(parts) {
		last := req[len(req)-1]
		in := events[req[0].idx[0] : last.idx[len(last.idx)-1]+1]
		packed, shared, done := c.placeParts(partData(req))
		resp, err := c.tr.Process(ctx, &ProcessRequest{Instance: inst, Packed: packed, Shared: shared})
		done(err == nil)
		if err != nil {
			bufs.abandon()
			return nil, c.transportErr(ctx, "Process", err)
		}
		if resp.Error != nil {
			return nil, DecodeError(resp.Error)
		}
		if out, err = unpackOut(resp.PackedOut, in, out, bin); err != nil {
			return nil, plugins.Permanent(fmt.Errorf("plugin returned an invalid event: %w", err))
		}
	}
	return out, nil
}

// writePacked is Write in the packed encoding.
func (c *Client) writePacked(ctx context.Context, inst uint64, events []*plugins.Event) error {
	var bufs buffers
	defer bufs.release()
	parts, tooBig := packEvents(events, &bufs, binaryDocs(c.features.Load()))
	reqs := groupParts(parts)
	write := func(req []packedPart) (*WriteResponse, error) {
		packed, shared, done := c.placeParts(partData(req))
		resp, err := c.out.Write(ctx, &WriteRequest{Instance: inst, Packed: packed, Shared: shared})
		done(err == nil)
		return resp, err
	}
	if len(reqs) == 1 && len(tooBig) == 0 {
		resp, err := write(reqs[0])
		if err != nil {
			bufs.abandon()
			return c.transportErr(ctx, "Write", err)
		}
		return DecodeError(resp.Error)
	}
	be := tooBigErrors(tooBig)
	for _, req := range reqs {
		var idx []int
		for _, p := range req {
			idx = append(idx, p.idx...)
		}
		resp, rerr := write(req)
		if rerr != nil {
			bufs.abandon()
			// The transport failed (a crash): the whole batch is retried,
			// duplicates of the requests already written being harmless.
			return c.transportErr(ctx, "Write", rerr)
		}
		if err := DecodeError(resp.Error); err != nil {
			addRequestError(be, err, idx)
		}
	}
	return be.Err()
}
