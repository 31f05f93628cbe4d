package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
)

// position is where one partition's delivery stands as of a batch.
type position struct {
	Topic     string `json:"t"`
	Partition int32  `json:"p"`
	// Offset is the next offset to read: the last emitted record's + 1.
	Offset int64 `json:"o"`
	// LeaderEpoch is the leader epoch of that record (-1 unknown), for
	// the broker's truncation detection on commit.
	LeaderEpoch int32 `json:"e"`
	// Assignment numbers the partition's assignment to this process; a
	// position from an earlier assignment is never committed.
	Assignment uint64 `json:"a"`
}

// checkpointDoc is the source's checkpoint: the cumulative positions of
// every partition this process emitted records of, in its current
// assignments. The engine persists it once the batch is delivered, then
// hands it back through Committed; only then are the offsets committed.
type checkpointDoc struct {
	Version int `json:"v"`
	// Session identifies the source instance that made the checkpoint;
	// positions of another process (a restarted forwarder) are ignored.
	Session   string     `json:"s"`
	Positions []position `json:"p"`
}

const checkpointVersion = 1

func encodeCheckpoint(d *checkpointDoc) []byte {
	d.Version = checkpointVersion
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // plain structs: cannot fail
	}
	return b
}

func decodeCheckpoint(b []byte) (*checkpointDoc, error) {
	if len(b) == 0 {
		return nil, errors.New("empty checkpoint")
	}
	var d checkpointDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("kafka source checkpoint is not valid: %w", err)
	}
	if d.Version != checkpointVersion {
		return nil, fmt.Errorf("kafka source checkpoint has version %d, want %d", d.Version, checkpointVersion)
	}
	for _, p := range d.Positions {
		if p.Topic == "" || p.Partition < 0 || p.Offset < 0 {
			return nil, fmt.Errorf("kafka source checkpoint has an invalid position %+v", p)
		}
	}
	return &d, nil
}
