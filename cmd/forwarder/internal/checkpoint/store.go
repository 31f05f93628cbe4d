// Package checkpoint persists source checkpoints and decides which one may be
// persisted: the Tracker commits only the highest checkpoint whose batch and
// all earlier batches are acknowledged.
package checkpoint

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store holds one checkpoint per source. The local bbolt store is the
// default; a Kafka-backed store for cluster mode implements the same interface.
type Store interface {
	// Load returns the stored checkpoint of key, or nil when there is none.
	Load(ctx context.Context, key string) ([]byte, error)
	// Save durably replaces the checkpoint of key.
	Save(ctx context.Context, key string, cp []byte) error
	// Close releases the store.
	Close() error
}

var bucket = []byte("checkpoints")

// BoltStore is a Store in a single bbolt file.
type BoltStore struct {
	path string
	db   *bolt.DB
}

// OpenBolt opens (creating if needed) the store at path. A file another
// process holds, or one that is not a valid store, gives an error naming it.
func OpenBolt(path string) (s *BoltStore, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("checkpoint store %s: %w", path, err)
	}
	if err := checkBoltFile(path); err != nil {
		return nil, fmt.Errorf("checkpoint store %s is corrupt (%v); move it away to start from the configured lookback", path, err)
	}
	// bbolt panics on some kinds of corruption, and reading a page past the
	// end of a damaged file through its mmap faults; make both recoverable
	// errors rather than a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("checkpoint store %s is corrupt (%v); move it away to start from the configured lookback", path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("checkpoint store %s is locked by another process (is another forwarder running with the same data_dir?)", path)
		}
		if errors.Is(err, bolt.ErrInvalid) || errors.Is(err, bolt.ErrVersionMismatch) || errors.Is(err, bolt.ErrChecksum) {
			return nil, fmt.Errorf("checkpoint store %s is corrupt (%v); move it away to start from the configured lookback", path, err)
		}
		return nil, fmt.Errorf("checkpoint store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("checkpoint store %s: %w", path, err)
	}
	return &BoltStore{path: path, db: db}, nil
}

// Load implements Store.
func (s *BoltStore) Load(_ context.Context, key string) (cp []byte, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("checkpoint store %s is corrupt (%v)", s.path, r)
		}
	}()
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucket).Get([]byte(key)); v != nil {
			cp = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint store %s: load %q: %w", s.path, key, err)
	}
	return cp, nil
}

// Save implements Store; it returns after the write is fsynced.
func (s *BoltStore) Save(_ context.Context, key string, cp []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("checkpoint store %s is corrupt (%v)", s.path, r)
		}
	}()
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), cp)
	})
	if err != nil {
		return fmt.Errorf("checkpoint store %s: save %q: %w", s.path, key, err)
	}
	return nil
}

// Close implements Store.
func (s *BoltStore) Close() error { return s.db.Close() }

// MemStore is an in-memory Store for tests.
type MemStore struct {
	mu sync.Mutex
	m  map[string][]byte
	// Saves counts successful Save calls.
	Saves int
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: map[string][]byte{}} }

// Load implements Store.
func (s *MemStore) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.m[key]...), nil
}

// Save implements Store.
func (s *MemStore) Save(_ context.Context, key string, cp []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = append([]byte(nil), cp...)
	s.Saves++
	return nil
}

// Close implements Store.
func (s *MemStore) Close() error { return nil }

// boltMagic marks a bbolt meta page.
const boltMagic = 0xED0CDAED

// checkBoltFile rejects an existing file that cannot be a bbolt database or
// is shorter than its own meta pages say: bbolt would map it and fault on
// the missing pages. A missing or empty file is fine (bbolt creates it).
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	// The first meta page sits at offset 0: a 16-byte page header, then
	// magic, version, page size, flags, root bucket (16), freelist, pgid.
	hdr := make([]byte, 64)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("file is %d bytes, too short for a checkpoint store", st.Size())
		}
		return err
	}
	le := binary.LittleEndian
	if le.Uint32(hdr[16:20]) != boltMagic {
		return errors.New("not a bbolt database (bad magic)")
	}
	pageSize := int64(le.Uint32(hdr[24:28]))
	if pageSize < 512 || pageSize > 1<<20 {
		return fmt.Errorf("implausible page size %d", pageSize)
	}
	highWater := int64(le.Uint64(hdr[56:64]))
	// Both meta pages may disagree; the larger one bounds what bbolt reads.
	meta2 := make([]byte, 64)
	if _, err := f.ReadAt(meta2, pageSize); err == nil && le.Uint32(meta2[16:20]) == boltMagic {
		if hw := int64(le.Uint64(meta2[56:64])); hw > highWater {
			highWater = hw
		}
	}
	if need := highWater * pageSize; need > st.Size() || st.Size() < 4*pageSize {
		return fmt.Errorf("file is %d bytes but its pages need %d: truncated", st.Size(), max(need, 4*pageSize))
	}
	return nil
}
