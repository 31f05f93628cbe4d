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
//     in-place changes come back as top-level key patches.
//   - Checkpoints cross as opaque bytes. Acknowledgements and checkpoint
//     persistence stay in the host: a plugin crash cannot corrupt progress.
//   - Domain errors travel inside responses (Error), keeping Permanent,
//     per-event BatchError failures and FieldError key paths. A failed
//     transport means the plugin crashed (ErrCrashed).
//   - Logs are hclog-style JSON lines on the plugin's stderr (NewLogHandler).
package rpc
