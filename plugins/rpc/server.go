package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/auditforwarder/forwarder/plugins"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Logger returns the logger of a new component instance; nil writes
	// hclog-style JSON to stderr at the level LogLevelEnv names.
	Logger func(id, typ string) *slog.Logger
	// Shared is the memory region the host shared with this process
	// (FEATURE_SHARED_MEMORY; sdk.Serve maps it with OpenSharedFromEnv),
	// or nil.
	Shared []byte
}

// Server is the plugin side of the protocol: it serves the components of
// the factories it was given, any number of instances of each.
type Server struct {
	UnimplementedComponentServer
	UnimplementedSourceServer
	UnimplementedTransformServer
	UnimplementedOutputServer

	factories []plugins.Factory
	byKey     map[factoryKey]plugins.Factory
	logger    func(id, typ string) *slog.Logger
	// features are the Feature bits this server announces (tests clear
	// them to play a plugin built before they existed).
	features uint32
	// shared is the region the host shares with this process, or nil.
	shared []byte

	mu        sync.Mutex
	next      uint64
	instances map[uint64]*instance
}

type factoryKey struct {
	kind plugins.Kind
	typ  string
}

type instance struct {
	kind plugins.Kind
	comp plugins.Component
	// hostFeatures are the Feature bits both sides understand.
	hostFeatures uint32
	status       *statusHub
	// ctx lives from Create to Close: the context a built-in gets in
	// Create and Start outlives the call, so the remote one does too.
	ctx    context.Context
	cancel context.CancelFunc
	// mu serializes the Process calls of a transform that is not a
	// plugins.ParallelTransform (never concurrent on one instance).
	mu sync.Mutex
	// forks are the idle forks of a ParallelTransform: concurrent Process
	// calls each take one (making a new one when none is idle), as the
	// engine's workers do in process.
	forks []plugins.ProcessFunc
}

// process runs a transform's Process on in: on an idle fork of a
// ParallelTransform, else serialized with the instance's other calls.
func (inst *instance) process(ctx context.Context, tr plugins.Transform, in []*plugins.Event) ([]*plugins.Event, error) {
	pt, ok := tr.(plugins.ParallelTransform)
	if !ok {
		inst.mu.Lock()
		defer inst.mu.Unlock()
		return tr.Process(ctx, in)
	}
	inst.mu.Lock()
	var fork plugins.ProcessFunc
	if n := len(inst.forks); n > 0 {
		fork, inst.forks = inst.forks[n-1], inst.forks[:n-1]
	}
	inst.mu.Unlock()
	if fork == nil {
		fork = pt.Fork()
	}
	out, err := fork(ctx, in)
	inst.mu.Lock()
	inst.forks = append(inst.forks, fork)
	inst.mu.Unlock()
	return out, err
}

// NewServer checks the factories (valid type names, no duplicate) and
// returns a Server for them.
func NewServer(factories []plugins.Factory, cfg ServerConfig) (*Server, error) {
	if len(factories) == 0 {
		return nil, errors.New("no component factories to serve")
	}
	s := &Server{factories: factories, byKey: map[factoryKey]plugins.Factory{}, instances: map[uint64]*instance{}, logger: cfg.Logger, features: supportedFeatures, shared: cfg.Shared}
	if len(cfg.Shared) > 0 {
		s.features |= FeatureShared
	}
	for _, f := range factories {
		if f == nil {
			return nil, errors.New("nil factory")
		}
		if !plugins.ValidTypeName(f.Type()) {
			return nil, fmt.Errorf("component type %q: must be lower snake_case, starting with a letter", f.Type())
		}
		if encodeKind(f.Kind()) == Kind_KIND_UNSPECIFIED {
			return nil, fmt.Errorf("component type %q: invalid kind %d", f.Type(), f.Kind())
		}
		k := factoryKey{f.Kind(), f.Type()}
		if _, dup := s.byKey[k]; dup {
			return nil, fmt.Errorf("%s type %q is served twice", f.Kind(), f.Type())
		}
		s.byKey[k] = f
	}
	if s.logger == nil {
		level := ParseLevel(os.Getenv(LogLevelEnv))
		h := NewLogHandler(os.Stderr, level)
		s.logger = func(string, string) *slog.Logger { return slog.New(h) }
	}
	return s, nil
}

// Describe lists the components served.
func (s *Server) Describe(context.Context, *DescribeRequest) (*DescribeResponse, error) {
	resp := &DescribeResponse{}
	for _, f := range s.factories {
		resp.Components = append(resp.Components, &ComponentInfo{
			Kind: encodeKind(f.Kind()), Type: f.Type(), Description: f.Description(), SampleConfig: f.SampleConfig(),
		})
	}
	return resp, nil
}

func (s *Server) factory(kind Kind, typ string) (plugins.Factory, error) {
	f, ok := s.byKey[factoryKey{decodeKind(kind), typ}]
	if !ok {
		var known []string
		for _, f := range s.factories {
			if encodeKind(f.Kind()) == kind {
				known = append(known, f.Type())
			}
		}
		return nil, fmt.Errorf("this plugin has no %s type %q (it offers: %v)", decodeKind(kind), typ, known)
	}
	return f, nil
}

// decode decodes and validates a config block exactly as the host does for
// a built-in: strictly over the defaults, then the Validate walk.
func decode(f plugins.Factory, data []byte) (any, error) {
	cfg := f.CreateDefaultConfig()
	if err := plugins.DecodeJSONConfig(data, cfg); err != nil {
		return cfg, err
	}
	return cfg, plugins.ValidateConfig("", cfg)
}

// Validate decodes and validates a config block.
func (s *Server) Validate(_ context.Context, req *ValidateRequest) (*ValidateResponse, error) {
	f, err := s.factory(req.Kind, req.Type)
	if err != nil {
		return &ValidateResponse{Error: EncodeError(err)}, nil
	}
	cfg, err := decode(f, req.ConfigJson)
	return &ValidateResponse{Error: EncodeError(err), Secrets: plugins.CollectSecrets(cfg)}, nil
}

// lifetime returns a context derived from the instance's lifetime that is
// also cancelled if the request ends while call runs.
func lifetime(inst context.Context, req context.Context, call func(context.Context) error) error {
	ctx, cancel := context.WithCancel(inst)
	stop := context.AfterFunc(req, cancel)
	err := call(ctx)
	if !stop() {
		cancel()
	}
	return err
}

// Create decodes the config and creates an instance.
func (s *Server) Create(ctx context.Context, req *CreateRequest) (*CreateResponse, error) {
	f, err := s.factory(req.Kind, req.Type)
	if err != nil {
		return &CreateResponse{Error: EncodeError(plugins.Permanent(err))}, nil
	}
	cfg, err := decode(f, req.ConfigJson)
	if err != nil {
		return &CreateResponse{Error: EncodeError(err)}, nil
	}
	st := req.GetSettings()
	hub := newStatusHub()
	set := plugins.Settings{
		ID:      st.GetId(),
		Logger:  s.logger(st.GetId(), f.Type()),
		Metrics: prometheus.NewRegistry(),
		Status:  hub,
		DataDir: st.GetDataDir(),
		Once:    st.GetOnce(),
		Now:     time.Now,
	}
	ictx, cancel := context.WithCancel(context.Background())
	var comp plugins.Component
	err = lifetime(ictx, ctx, func(c context.Context) error {
		var err error
		comp, err = f.Create(c, set, cfg)
		return err
	})
	if err == nil && comp == nil {
		err = fmt.Errorf("%s %q: Create returned no component", f.Kind(), f.Type())
	}
	if err != nil {
		cancel()
		return &CreateResponse{Error: EncodeError(err)}, nil
	}
	if !implements(f.Kind(), comp) {
		cancel()
		return &CreateResponse{Error: EncodeError(plugins.Permanent(fmt.Errorf("type %q does not implement a %s", f.Type(), f.Kind())))}, nil
	}
	s.mu.Lock()
	s.next++
	id := s.next
	s.instances[id] = &instance{kind: f.Kind(), comp: comp, status: hub, ctx: ictx, cancel: cancel, hostFeatures: req.Features & s.features}
	s.mu.Unlock()
	_, parallel := comp.(plugins.ParallelTransform)
	return &CreateResponse{Instance: id, Features: s.features, Parallel: parallel}, nil
}

func implements(k plugins.Kind, c plugins.Component) bool {
	switch k {
	case plugins.KindSource:
		_, ok := c.(plugins.Source)
		return ok
	case plugins.KindTransform:
		_, ok := c.(plugins.Transform)
		return ok
	case plugins.KindOutput:
		_, ok := c.(plugins.Output)
		return ok
	}
	return false
}

func (s *Server) instance(id uint64) (*instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no component instance %d", id)
	}
	return inst, nil
}

// Start starts an instance.
func (s *Server) Start(ctx context.Context, req *InstanceRequest) (*ErrorResponse, error) {
	inst, err := s.instance(req.Instance)
	if err != nil {
		return nil, err
	}
	err = lifetime(inst.ctx, ctx, inst.comp.Start)
	return &ErrorResponse{Error: EncodeError(err)}, nil
}

// Close closes an instance and forgets it; closing an unknown (already
// closed) instance succeeds, as Close twice must.
func (s *Server) Close(ctx context.Context, req *InstanceRequest) (*ErrorResponse, error) {
	s.mu.Lock()
	inst, ok := s.instances[req.Instance]
	delete(s.instances, req.Instance)
	s.mu.Unlock()
	if !ok {
		return &ErrorResponse{}, nil
	}
	err := inst.comp.Close(ctx)
	inst.cancel()
	inst.status.close()
	return &ErrorResponse{Error: EncodeError(err)}, nil
}

// WatchStatus streams an instance's status reports.
func (s *Server) WatchStatus(req *InstanceRequest, stream Component_WatchStatusServer) error {
	inst, err := s.instance(req.Instance)
	if err != nil {
		return err
	}
	var last *StatusUpdate
	for {
		cur, changed, closed := inst.status.get()
		up := &StatusUpdate{Ready: cur == nil}
		if cur != nil {
			up.Message = validUTF8(cur.Error())
		}
		if last == nil || last.Ready != up.Ready || last.Message != up.Message {
			if err := stream.Send(up); err != nil {
				return err
			}
			last = up
		}
		if closed {
			return nil
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// Run runs a source; see the Source service in plugin.proto.
func (s *Server) Run(stream Source_RunServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "the first message of Run must be RunStart")
	}
	inst, err := s.instance(start.Instance)
	if err != nil {
		return err
	}
	src, ok := inst.comp.(plugins.Source)
	if !ok {
		return status.Errorf(codes.InvalidArgument, "instance %d is a %s, not a source", start.Instance, inst.kind)
	}
	var from plugins.Checkpoint
	if start.HasCheckpoint {
		from = plugins.Checkpoint(start.Checkpoint)
		if from == nil {
			from = plugins.Checkpoint{}
		}
	}

	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	results := make(chan *EmitResult, 1)
	go func() {
		defer cancel()
		for {
			msg, err := stream.Recv()
			if err != nil {
				return
			}
			if r := msg.GetEmitted(); r != nil {
				select {
				case results <- r:
				case <-ctx.Done():
					return
				}
			}
		}
	}()

	var sendMu sync.Mutex
	var seq uint64
	emit := func(ectx context.Context, b plugins.Batch) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		seq++
		// The buffers go back to the pool once the host has answered,
		// long after the message left.
		var bufs buffers
		defer bufs.release()
		batch := &EmitBatch{Seq: seq, Checkpoint: b.Checkpoint}
		if inst.hostFeatures&FeaturePacked != 0 && len(b.Events) > 0 {
			parts, tooBig := packEvents(b.Events, &bufs, binaryDocs(inst.hostFeatures))
			if len(tooBig) > 0 {
				return plugins.Permanent(fmt.Errorf("event %d is above the plugin message limit of %d MiB", tooBig[0], MaxMessageBytes>>20))
			}
			batch.Packed = partData(parts)
		} else {
			batch.Events = encodeEvents(b.Events, &bufs)
		}
		if err := stream.Send(&RunResponse{Msg: &RunResponse_Batch{Batch: batch}}); err != nil {
			return fmt.Errorf("host went away: %w", err)
		}
		for {
			select {
			case r := <-results:
				if r.Seq != seq {
					continue
				}
				return DecodeError(r.Error)
			case <-ctx.Done():
				return ctx.Err()
			case <-ectx.Done():
				return ectx.Err()
			}
		}
	}
	runErr := src.Run(ctx, from, emit)
	sendMu.Lock()
	defer sendMu.Unlock()
	if ctx.Err() != nil {
		return nil
	}
	return stream.Send(&RunResponse{Msg: &RunResponse_Done{Done: &RunDone{Error: EncodeError(runErr)}}})
}

// Process runs a transform. Events the transform modified in place go back
// as patches of their top-level keys. A packed request gets a packed
// response.
func (s *Server) Process(ctx context.Context, req *ProcessRequest) (*ProcessResponse, error) {
	inst, err := s.instance(req.Instance)
	if err != nil {
		return nil, err
	}
	tr, ok := inst.comp.(plugins.Transform)
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "instance %d is a %s, not a transform", req.Instance, inst.kind)
	}
	parts, err := s.parts(req.Packed, req.Shared)
	if err != nil {
		return &ProcessResponse{Error: EncodeError(plugins.Permanent(err))}, nil
	}
	packed := len(parts) > 0
	var in []*plugins.Event
	var snaps []snapshot
	var release func()
	if packed {
		in, snaps, release, err = unpackForTransform(parts, binaryDocs(inst.hostFeatures))
	} else {
		in, err = decodeEvents(req.Events)
	}
	if err != nil {
		return &ProcessResponse{Error: EncodeError(plugins.Permanent(err))}, nil
	}
	if snaps == nil {
		snaps, release = takeSnapshots(in)
	}
	r, err := runTransform(ctx, inst, tr, in, snaps, release)
	if err != nil {
		return &ProcessResponse{Error: EncodeError(err)}, nil
	}
	defer r.release()
	// Encode in parallel: as patches of the request's document when
	// possible, whole otherwise.
	if packed {
		return &ProcessResponse{PackedOut: r.pack(0, len(r.kept), binaryDocs(inst.hostFeatures))}, nil
	}
	resp := &ProcessResponse{Events: make([]*OutEvent, len(r.kept))}
	parallel(len(r.kept), func(lo, hi int) {
		var d differ
		for k := lo; k < hi; k++ {
			resp.Events[k] = encodeOut(r.kept[k], r.origins[k], r.snaps, r.fields, r.metas, &d)
		}
	})
	return resp, nil
}

// transformed is a transform's result with what encoding it needs: the
// inputs as they were (snapshots of their documents, the documents'
// identity, their meta) and which input each kept event was (or -1).
type transformed struct {
	kept    []*plugins.Event
	origins []int
	snaps   []snapshot
	// release gives the snapshots' storage back, once encoded.
	release func()
	fields  []*plugins.Object
	metas   []plugins.Meta
}

// runTransform runs the transform on in, remembering what each input was
// to recognise in-place modifications: snaps are the snapshots of in's
// documents (takeSnapshots), release gives their storage back.
func runTransform(ctx context.Context, inst *instance, tr plugins.Transform, in []*plugins.Event, snaps []snapshot, release func()) (*transformed, error) {
	r := &transformed{snaps: snaps, release: release, fields: make([]*plugins.Object, len(in)), metas: make([]plugins.Meta, len(in))}
	for i, ev := range in {
		r.fields[i] = ev.Fields
		r.metas[i] = ev.Meta
	}
	out, err := inst.process(ctx, tr, in)
	if err != nil {
		release()
		return nil, err
	}
	r.kept, r.origins = outOrigins(in, out)
	return r, nil
}

// pack encodes the kept events lo..hi-1 as packed_out parts.
func (r *transformed) pack(lo, hi int, bin bool) [][]byte {
	return packOut(r.kept[lo:hi], r.origins[lo:hi], r.snaps, r.fields, r.metas, bin)
}

// outOrigins drops the nil events of a transform's result and finds which
// of the rest are inputs modified in place (the first time each appears):
// origins[k] is the input index of kept[k], or -1.
func outOrigins(in, out []*plugins.Event) (kept []*plugins.Event, origins []int) {
	origins = make([]int, len(out))
	used := make([]bool, len(in))
	kept = out[:0:0]
	var origin map[*plugins.Event]int
	for k, ev := range out {
		if ev == nil {
			continue
		}
		o := -1
		// Most transforms return their input in order: no map needed.
		if k < len(in) && in[k] == ev {
			o = k
		} else {
			if origin == nil {
				origin = make(map[*plugins.Event]int, len(in))
				for i, e := range in {
					origin[e] = i
				}
			}
			if i, ok := origin[ev]; ok {
				o = i
			}
		}
		if o >= 0 && used[o] {
			o = -1
		}
		if o >= 0 {
			used[o] = true
		}
		origins[len(kept)] = o
		kept = append(kept, ev)
	}
	return kept, origins[:len(kept)]
}

// encodeOut encodes one event a transform returned; i is the index of the
// request event it was modified from, or -1. The patches' values point into
// d.buf, which only grows.
func encodeOut(ev *plugins.Event, i int, snaps []snapshot, fields []*plugins.Object, metas []plugins.Meta, d *differ) *OutEvent {
	oe := &OutEvent{}
	if i >= 0 {
		oe.Origin = uint32(i) + 1
		if !sameMeta(&ev.Meta, &metas[i]) {
			oe.Meta = &Meta{}
			fillMeta(oe.Meta, &ev.Meta)
		}
		if ev.Fields == fields[i] && ev.Fields != nil {
			d.patches = d.patches[:0]
			if d.diff(snaps[i], ev.Fields, true) {
				for _, p := range d.patches {
					oe.Patches = append(oe.Patches, &FieldPatch{Key: p.key, Delete: p.del, Value: p.val})
				}
				return oe
			}
		}
	} else {
		oe.Meta = &Meta{}
		fillMeta(oe.Meta, &ev.Meta)
	}
	oe.Replace = true
	start := len(d.buf)
	if ev.Fields != nil {
		d.buf = ev.Fields.AppendJSON(d.buf)
	} else {
		d.buf = append(d.buf, '{', '}')
	}
	oe.Fields = d.buf[start:len(d.buf):len(d.buf)]
	return oe
}

// Write runs an output.
func (s *Server) Write(ctx context.Context, req *WriteRequest) (*WriteResponse, error) {
	inst, err := s.instance(req.Instance)
	if err != nil {
		return nil, err
	}
	out, ok := inst.comp.(plugins.Output)
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "instance %d is a %s, not an output", req.Instance, inst.kind)
	}
	parts, err := s.parts(req.Packed, req.Shared)
	if err != nil {
		return &WriteResponse{Error: EncodeError(plugins.Permanent(err))}, nil
	}
	var events []*plugins.Event
	if len(parts) > 0 {
		// The events are the output's until Write returns; then their
		// memory serves the next request.
		ds := getDecoders(len(parts))
		defer putDecoders(ds)
		events, err = unpackEvents(parts, binaryDocs(inst.hostFeatures), ds)
	} else {
		events, err = decodeEvents(req.Events)
	}
	if err != nil {
		return &WriteResponse{Error: EncodeError(plugins.Permanent(err))}, nil
	}
	return &WriteResponse{Error: EncodeError(out.Write(ctx, events))}, nil
}

// parts returns a request's packed parts: in the message, or in the
// shared region. Parts in the region are valid until the call is
// answered: the events decoded from them are the component's until
// Process or Write returns, as always, and no longer.
func (s *Server) parts(packed [][]byte, shared *SharedParts) ([][]byte, error) {
	if shared == nil {
		return packed, nil
	}
	return sharedParts(s.shared, shared)
}

// CloseAll closes every instance still open (the host went away).
func (s *Server) CloseAll(ctx context.Context) {
	s.mu.Lock()
	all := s.instances
	s.instances = map[uint64]*instance{}
	s.mu.Unlock()
	for _, inst := range all {
		_ = inst.comp.Close(ctx)
		inst.cancel()
		inst.status.close()
	}
}

// statusHub is the plugins.StatusReporter of a remote instance.
type statusHub struct {
	mu      sync.Mutex
	cur     error
	changed chan struct{}
	closed  bool
}

func newStatusHub() *statusHub { return &statusHub{changed: make(chan struct{})} }

// SetStatus implements plugins.StatusReporter.
func (h *statusHub) SetStatus(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.cur = err
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *statusHub) get() (error, <-chan struct{}, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur, h.changed, h.closed
}

func (h *statusHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.changed)
	}
}
