// Command ndjson-replay is an example external plugin: the ndjson_replay
// source replays NDJSON files (exports, archives, another forwarder's file
// output), one event per line, resuming from its checkpoint. Build it and
// put it in the forwarder's plugin_dir (or reference it with `type: plugin`).
package main

import "github.com/auditforwarder/forwarder/plugins/sdk"

func main() { sdk.Serve(newFactory()) }
