// Package checkpoint persists source checkpoints and decides which one may be
// persisted: the Tracker commits only the highest checkpoint whose batch and
// all earlier batches are acknowledged.
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	// bbolt panics on some kinds of corruption; turn that into an error.
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
func (s *BoltStore) Save(_ context.Context, key string, cp []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
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
