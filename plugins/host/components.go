package host

import (
	"context"
	"errors"
	"fmt"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/rpc"
)

// remote is the lifecycle shared by the three remote component kinds.
type remote struct{ s *supervisor }

func (r *remote) Start(ctx context.Context) error { return r.s.Start(ctx) }
func (r *remote) Close(ctx context.Context) error { return r.s.Close(ctx) }

// Pid returns the process id of the plugin currently serving the component
// (0 while it restarts).
func (r *remote) Pid() int { return r.s.pid() }

// sharedMemory reports whether batches cross in memory shared with the
// plugin process now serving the component.
func (r *remote) sharedMemory() bool {
	r.s.mu.Lock()
	h := r.s.cur
	r.s.mu.Unlock()
	return h != nil && h.proc.rpc.SharedMemory()
}

type remoteSource struct{ remote }

var _ plugins.Source = (*remoteSource)(nil)

// Run streams the plugin source's batches into emit. A crash ends Run with
// a retriable error: the engine calls Run again, with the checkpoint of
// the last batch emitted, once the plugin is restarted; batches already
// emitted are the host's and are delivered regardless.
func (r *remoteSource) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	h, err := r.s.get(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	err = h.proc.rpc.Run(ctx, h.id, from, func(ectx context.Context, b plugins.Batch) error {
		r.s.ok(h)
		return emit(ectx, b)
	})
	if errors.Is(err, rpc.ErrCrashed) {
		r.s.fail(h, err)
		return fmt.Errorf("%w; it is restarted and the source resumes after its last emitted batch", err)
	}
	return err
}

type remoteTransform struct{ remote }

var _ plugins.Transform = (*remoteTransform)(nil)

// Process sends the batch to the plugin. The events stay the host's until
// the plugin answers, so when the plugin crashes the same batch is simply
// sent again once it is restarted; a batch that keeps crashing it becomes
// a permanent failure (dead letter) instead of a crash loop.
func (t *remoteTransform) Process(ctx context.Context, events []*plugins.Event) ([]*plugins.Event, error) {
	for attempt := 1; ; attempt++ {
		h, err := t.s.get(ctx)
		if err != nil {
			return nil, err
		}
		out, err := h.proc.rpc.Process(ctx, h.id, events)
		if err == nil {
			t.s.ok(h)
			return out, nil
		}
		if !errors.Is(err, rpc.ErrCrashed) {
			t.s.ok(h)
			return nil, err
		}
		t.s.fail(h, err)
		if attempt >= poisonCrashes {
			msg := fmt.Sprintf("the plugin crashed %d times in a row on this batch; giving the batch up", attempt)
			if p := t.s.lastPanicText(); p != "" {
				msg += "; last panic: " + firstLine(p)
			}
			return nil, plugins.Permanent(errors.New(msg))
		}
	}
}

// remoteParallelTransform is a remote transform whose plugin side is a
// plugins.ParallelTransform: the engine's workers each keep a Process
// call in flight, so the host encodes one batch while the plugin works on
// another, and the plugin runs each call on a fork of its own.
type remoteParallelTransform struct{ remoteTransform }

var _ plugins.ParallelTransform = (*remoteParallelTransform)(nil)

// Fork implements plugins.ParallelTransform. Process keeps no state
// between calls, so every fork is Process itself.
func (t *remoteParallelTransform) Fork() plugins.ProcessFunc { return t.Process }

type remoteOutput struct{ remote }

var _ plugins.Output = (*remoteOutput)(nil)

// Write sends the batch to the plugin. A crash is a plain (retriable)
// error: the engine retries the batch with its delivery backoff, by which
// time the plugin is restarted.
func (o *remoteOutput) Write(ctx context.Context, events []*plugins.Event) error {
	h, err := o.s.get(ctx)
	if err != nil {
		return err
	}
	err = h.proc.rpc.Write(ctx, h.id, events)
	if errors.Is(err, rpc.ErrCrashed) {
		o.s.fail(h, err)
		return fmt.Errorf("%w; it is restarted and the batch retried", err)
	}
	if ctx.Err() == nil {
		o.s.ok(h)
	}
	return err
}

// newRemote creates the component for a kind.
func newRemote(ctx context.Context, sp spec) (plugins.Component, error) {
	s, err := newSupervisor(ctx, sp)
	if err != nil {
		return nil, err
	}
	switch sp.kind {
	case plugins.KindSource:
		return &remoteSource{remote{s}}, nil
	case plugins.KindTransform:
		// Whether the plugin's transform is parallel is learnt from its
		// first instance; a restarted process of another build that is not
		// simply serializes the calls again.
		s.mu.Lock()
		h := s.cur
		s.mu.Unlock()
		if h != nil && h.proc.rpc.Parallel(h.id) {
			return &remoteParallelTransform{remoteTransform{remote{s}}}, nil
		}
		return &remoteTransform{remote{s}}, nil
	case plugins.KindOutput:
		return &remoteOutput{remote{s}}, nil
	}
	_ = s.Close(ctx)
	return nil, fmt.Errorf("invalid kind %d", sp.kind)
}
