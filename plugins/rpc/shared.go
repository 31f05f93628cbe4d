package rpc

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The shared-memory transport (FEATURE_SHARED_MEMORY). Through gRPC, a
// batch's bytes are copied into HTTP/2 frames, encrypted (AutoMTLS),
// written to the socket, read, decrypted and gathered again: for a
// transform that changes a few fields of 1 KB events, that is most of what
// a remote call costs. With a region of memory both processes map, the
// host writes the packed parts there and the request only says where they
// are; the plugin decodes them in place. Answers still travel by gRPC:
// they are small (patches) and the host must not trust the plugin's
// writes to memory it reads.

// FeatureShared is the FEATURE_SHARED_MEMORY bit.
const FeatureShared = uint32(Feature_FEATURE_SHARED_MEMORY)

// SharedEnv names the environment variable that tells a plugin process
// which inherited file descriptor holds the shared region, and its size:
// "fd:size".
const SharedEnv = "FORWARDER_PLUGIN_SHM"

// DefaultSharedSize is the size of a plugin process's shared region. Only
// the pages a batch touches take memory, and the allocator reuses the
// lowest free addresses first, so what a region costs is about the bytes
// of the batches in flight at once; a batch that finds no room crosses in
// the message instead.
const DefaultSharedSize = 64 << 20

// sharedAlign rounds allocations to whole pages.
const sharedAlign = 4096

// Region is a memory region the host shares with one plugin process: the
// host allocates room for a request's parts in it, and gives the room
// back once the plugin has answered.
type Region struct {
	file *os.File // nil once handed to the process and closed
	mem  []byte
	// unmap releases mem (nil for memory the region does not own).
	unmap func([]byte) error

	mu     sync.Mutex
	free   []extent // sorted by offset, coalesced
	active int      // allocations not yet given back
	closed bool
}

type extent struct{ off, n int }

// NewRegion creates a region of size bytes (Linux: an anonymous memfd,
// which no other process can open, mapped shared).
func NewRegion(size int) (*Region, error) {
	size = (size + sharedAlign - 1) / sharedAlign * sharedAlign
	if size <= 0 {
		return nil, errors.New("shared region: size must be positive")
	}
	f, mem, unmap, err := createShared(size)
	if err != nil {
		return nil, fmt.Errorf("shared region: %w", err)
	}
	return &Region{file: f, mem: mem, unmap: unmap, free: []extent{{0, size}}}, nil
}

// newRegionOver makes a region over mem, for tests on one process.
func newRegionOver(mem []byte) *Region {
	return &Region{mem: mem, free: []extent{{0, len(mem)}}}
}

// File returns the region's file, to pass to the plugin process
// (exec.Cmd.ExtraFiles), or nil after CloseFile.
func (r *Region) File() *os.File { return r.file }

// CloseFile closes the host's descriptor of the region once the plugin
// process has inherited it; the mapping stays.
func (r *Region) CloseFile() {
	if r != nil && r.file != nil {
		_ = r.file.Close()
		r.file = nil
	}
}

// Env returns the SharedEnv entry for a process that inherits the
// region's file as descriptor fd.
func (r *Region) Env(fd int) string {
	return SharedEnv + "=" + strconv.Itoa(fd) + ":" + strconv.Itoa(len(r.mem))
}

// Size is the region's size in bytes.
func (r *Region) Size() int { return len(r.mem) }

// alloc reserves n bytes, lowest address first; ok is false when the
// region has no room that large (or is closed).
func (r *Region) alloc(n int) (off int, mem []byte, ok bool) {
	if n <= 0 {
		return 0, nil, false
	}
	size := (n + sharedAlign - 1) / sharedAlign * sharedAlign
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, nil, false
	}
	for i, e := range r.free {
		if e.n < size {
			continue
		}
		off = e.off
		if e.n == size {
			r.free = append(r.free[:i], r.free[i+1:]...)
		} else {
			r.free[i] = extent{e.off + size, e.n - size}
		}
		r.active++
		return off, r.mem[off : off+n : off+n], true
	}
	return 0, nil, false
}

// release gives back the n bytes at off. reuse is false when the plugin
// may still be reading them (the call failed without an answer): the room
// is then never handed out again, for as long as this process lives.
func (r *Region) release(off, n int, reuse bool) {
	size := (n + sharedAlign - 1) / sharedAlign * sharedAlign
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active--
	if reuse {
		i := sort.Search(len(r.free), func(i int) bool { return r.free[i].off > off })
		r.free = append(r.free, extent{})
		copy(r.free[i+1:], r.free[i:])
		r.free[i] = extent{off, size}
		// Coalesce with the neighbours.
		if i+1 < len(r.free) && r.free[i].off+r.free[i].n == r.free[i+1].off {
			r.free[i].n += r.free[i+1].n
			r.free = append(r.free[:i+1], r.free[i+2:]...)
		}
		if i > 0 && r.free[i-1].off+r.free[i-1].n == r.free[i].off {
			r.free[i-1].n += r.free[i].n
			r.free = append(r.free[:i], r.free[i+1:]...)
		}
	}
	r.unmapIfDone()
}

// Close releases the region once no allocation is in use: the plugin
// process is gone, and a call still copying into it finishes first.
func (r *Region) Close() {
	if r == nil {
		return
	}
	r.CloseFile()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.unmapIfDone()
}

func (r *Region) unmapIfDone() {
	if r.closed && r.active == 0 && r.mem != nil {
		if r.unmap != nil {
			_ = r.unmap(r.mem)
		}
		r.mem = nil
	}
}

// OpenSharedFromEnv maps the region a host shared with this plugin
// process (SharedEnv). It returns nil, nil when the host shared none.
func OpenSharedFromEnv() ([]byte, error) {
	v := os.Getenv(SharedEnv)
	if v == "" {
		return nil, nil
	}
	fdText, sizeText, ok := strings.Cut(v, ":")
	fd, err1 := strconv.Atoi(fdText)
	size, err2 := strconv.Atoi(sizeText)
	if !ok || err1 != nil || err2 != nil || fd < 3 || size <= 0 {
		return nil, fmt.Errorf("%s=%q: want fd:size", SharedEnv, v)
	}
	mem, err := mapShared(fd, size)
	if err != nil {
		return nil, fmt.Errorf("mapping the region the host shared (%s=%s): %w", SharedEnv, v, err)
	}
	return mem, nil
}

// sharedParts returns the parts sp locates in mem, checking that they lie
// inside it.
func sharedParts(mem []byte, sp *SharedParts) ([][]byte, error) {
	if len(mem) == 0 {
		return nil, errors.New("request in shared memory, but no region is mapped")
	}
	off := sp.GetOffset()
	if off > uint64(len(mem)) {
		return nil, fmt.Errorf("shared parts at offset %d, beyond the %d-byte region", off, len(mem))
	}
	parts := make([][]byte, len(sp.GetSizes()))
	at := int(off)
	for i, n := range sp.GetSizes() {
		if uint64(n) > uint64(len(mem)-at) {
			return nil, fmt.Errorf("shared part %d (%d bytes at %d) ends beyond the %d-byte region", i, n, at, len(mem))
		}
		// Capped: appending to a part must never write over the next.
		parts[i] = mem[at : at+int(n) : at+int(n)]
		at += int(n)
	}
	return parts, nil
}
