// Package rpc is the wire protocol between the forwarder and its external
// plugins: the go-plugin handshake and versioned plugin set, the gRPC
// services generated from plugin.proto, and the adapters on both sides —
// Server turns plugins.Factory values into the services inside a plugin
// process, Client turns the services back into calls the host makes.
//
// # Rules of the protocol
//
//   - Configuration crosses as JSON bytes and is decoded inside the plugin
//     by plugins.DecodeJSONConfig and plugins.ValidateConfig, the decoder
//     the built-ins use, so a typo fails with the same key path.
//   - Events cross in batches: the document as JSON (Object.AppendJSON /
//     plugins.ParseObject) and the Meta fields beside it. A transform's
//     in-place changes come back as top-level key patches. Optional
//     encodings, used only when both sides announce them in Create
//     (Feature): packed parts (packed.go) and, inside them, binary
//     documents (bindoc.go), which mean exactly what the JSON would.
//   - The bytes of a packed batch are copied once on each side: the host
//     sends its parts in place and the plugin decodes the received message
//     without copying it again (wireCodec). With FEATURE_SHARED_MEMORY
//     (shared.go, Linux) they do not cross the socket at all: the host
//     writes them into a memfd region the plugin process inherited and
//     the request says where they are. Either way the decoded events'
//     strings point into what carried them, so what a component keeps
//     beyond the call it copies, as for a built-in (see package plugins,
//     Memory). The host reuses the region's room once the call is
//     answered, and never the room of a call that failed unanswered.
//   - A transform that is a plugins.ParallelTransform says so in Create
//     (CreateResponse.parallel): the host may then make several Process
//     calls at once, and the plugin runs each on a fork of the transform;
//     any other transform gets one call at a time.
//   - Checkpoints cross as opaque bytes. Acknowledgements and checkpoint
//     persistence stay in the host: a plugin crash cannot corrupt progress.
//   - Domain errors travel inside responses (Error), keeping Permanent,
//     per-event BatchError failures and FieldError key paths. A failed
//     transport means the plugin crashed (ErrCrashed).
//   - Logs are hclog-style JSON lines on the plugin's stderr (NewLogHandler).
package rpc
