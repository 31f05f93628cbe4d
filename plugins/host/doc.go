// Package host runs external plugins: it discovers plugin binaries (a
// plugin_dir, or `type: plugin` components with a path), starts each
// component in its own plugin process through hashicorp/go-plugin, and
// supervises it.
//
// # Isolation
//
// A plugin process gets an explicit, minimal environment (never the
// forwarder's, which holds cloud credentials), authenticates its gRPC
// connection with AutoMTLS, must complete its handshake within the start
// timeout, and with a configured sha256 only a binary with that hash is
// started. On Linux it is killed with the forwarder.
//
// # Supervision
//
// A crashed plugin (its connection fails, or its process exits) is
// restarted with backoff and its instance re-created and re-started; the
// plugin's panic lands in the forwarder's log with the component id.
// In-flight work is retried: a transform's batch is sent again, an
// output's Write fails with a retriable error so the engine retries it,
// and a source's Run ends with a retriable error so the engine runs it
// again from the last batch it emitted. Checkpoints and acknowledgements
// never leave the host, so a crash cannot lose or corrupt progress.
// After repeated crashes in a row the component reports not ready until
// a call succeeds again; a transform batch that crashes the plugin every
// time it is sent is eventually given up as a permanent failure (dead
// letter) rather than looping forever.
//
// # Lifecycle
//
// Create starts the process and creates the instance in it; Start and
// Close are forwarded; Close stops the process and may be called without
// Start and more than once.
package host
