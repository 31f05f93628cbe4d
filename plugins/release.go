package plugins

import "context"

type releaseKey struct{}

// WithRelease returns a context whose OnRelease calls register. The engine
// passes one to every Process call, bound to the batch being processed.
func WithRelease(ctx context.Context, register func(fn func())) context.Context {
	return context.WithValue(ctx, releaseKey{}, register)
}

// OnRelease asks for fn to be called once the pipeline is done with the
// batch being processed (see Batch.Release): a transform can then recycle
// memory the batch's documents use. It reports false when ctx is not a
// batch's (a test, a tool): fn is then never called.
func OnRelease(ctx context.Context, fn func()) bool {
	register, ok := ctx.Value(releaseKey{}).(func(func()))
	if !ok {
		return false
	}
	register(fn)
	return true
}
