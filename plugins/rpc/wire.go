package rpc

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec wireCodec falls back to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// wireCodec is gRPC's proto codec with a shortcut for the messages that
// carry packed parts (ProcessRequest, WriteRequest, ProcessResponse), the
// bulk of the bytes crossing. The wire format is protobuf's, so a peer
// using the plain codec reads and writes the same bytes.
//
// The plain codec costs a packed batch two extra copies on each side:
// marshalling copies the parts into a (zeroed) pooled buffer, and
// unmarshalling gathers the received frames into a (zeroed) pooled buffer
// then copies every part out of it. Instead, Marshal sends the parts where
// they are, between small headers, and Unmarshal gathers the frames into
// one buffer of its own and points the parts into it. The decoded events
// then point into that buffer too (partDecoder.unpack), which is why it is never
// given back to a pool: the garbage collector frees it with the last
// string that uses it.
type wireCodec struct{}

// Name is "proto": the content-subtype stays the one every peer has.
func (wireCodec) Name() string { return "proto" }

func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2("proto") }

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *ProcessRequest:
		if len(m.Events) == 0 && len(m.Packed) > 0 && len(m.ProtoReflect().GetUnknown()) == 0 {
			return marshalPacked(m.Instance, m.Packed), nil
		}
	case *WriteRequest:
		if len(m.Events) == 0 && len(m.Packed) > 0 && len(m.ProtoReflect().GetUnknown()) == 0 {
			return marshalPacked(m.Instance, m.Packed), nil
		}
	case *ProcessResponse:
		// The plugin's parts are allocated for the response alone.
		if len(m.Events) == 0 && m.Error == nil && len(m.PackedOut) > 0 && len(m.ProtoReflect().GetUnknown()) == 0 {
			return marshalPacked(0, m.PackedOut), nil
		}
	}
	return protoCodec().Marshal(v)
}

// Field numbers of the messages wireCodec handles itself (plugin.proto).
const (
	fieldInstance  = 1 // ProcessRequest.instance, WriteRequest.instance
	fieldPacked    = 3 // ProcessRequest.packed, WriteRequest.packed
	fieldPackedOut = 3 // ProcessResponse.packed_out
)

// marshalPacked encodes a ProcessRequest or WriteRequest (they share field
// numbers) holding only instance and packed parts, or a ProcessResponse
// holding only packed_out parts (the same field number, instance 0), the
// parts aliased: the caller keeps them unchanged until the call has
// returned successfully (after a failed call, gRPC may still hold them).
func marshalPacked(instance uint64, parts [][]byte) mem.BufferSlice {
	out := make(mem.BufferSlice, 0, 2*len(parts))
	var hdr []byte
	if instance != 0 {
		hdr = protowire.AppendTag(hdr, fieldInstance, protowire.VarintType)
		hdr = protowire.AppendVarint(hdr, instance)
	}
	for _, p := range parts {
		hdr = protowire.AppendTag(hdr, fieldPacked, protowire.BytesType)
		hdr = protowire.AppendVarint(hdr, uint64(len(p)))
		if len(p) == 0 {
			continue
		}
		out = append(out, mem.SliceBuffer(hdr), mem.SliceBuffer(p))
		hdr = nil
	}
	if len(hdr) > 0 {
		out = append(out, mem.SliceBuffer(hdr))
	}
	return out
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	var instance *uint64
	var packed *[][]byte
	var field protowire.Number
	switch m := v.(type) {
	case *ProcessRequest:
		instance, packed, field = &m.Instance, &m.Packed, fieldPacked
	case *WriteRequest:
		instance, packed, field = &m.Instance, &m.Packed, fieldPacked
	case *ProcessResponse:
		packed, field = &m.PackedOut, fieldPackedOut
	default:
		return protoCodec().Unmarshal(data, v)
	}
	// A buffer of our own, gathered in one copy: the parts point into it.
	buf := make([]byte, data.Len())
	data.CopyTo(buf)
	if !unmarshalPacked(buf, instance, packed, field) {
		// Anything else in the message (events in the original encoding,
		// an error, a field this version does not know): protobuf decodes
		// it all, copying.
		if err := proto.Unmarshal(buf, v.(proto.Message)); err != nil {
			return fmt.Errorf("grpc: failed to unmarshal the received message: %w", err)
		}
	}
	return nil
}

// unmarshalPacked decodes b into instance (when not nil) and packed, the
// parts pointing into b, and reports whether b held nothing else: when it
// returns false, the caller decodes b the general way.
func unmarshalPacked(b []byte, instance *uint64, packed *[][]byte, field protowire.Number) bool {
	var parts [][]byte
	var inst uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case instance != nil && num == fieldInstance && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			inst, b = v, b[n:]
		case num == field && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			// Capped: appending to a part must never write over the next.
			parts = append(parts, v[:len(v):len(v)])
			b = b[n:]
		default:
			return false
		}
	}
	if instance != nil {
		*instance = inst
	}
	*packed = parts
	return true
}
