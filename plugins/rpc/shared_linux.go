package rpc

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// createShared makes an anonymous memory file of size bytes and maps it.
// A memfd has no path: only the processes given its descriptor can map it.
func createShared(size int) (*os.File, []byte, func([]byte) error, error) {
	fd, err := unix.MemfdCreate("forwarder-plugin", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "forwarder-plugin-shm")
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	mem, err := mapShared(fd, size)
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	return f, mem, syscall.Munmap, nil
}

// mapShared maps size bytes of the file fd, shared with the other process.
func mapShared(fd, size int) ([]byte, error) {
	mem, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return mem, nil
}
