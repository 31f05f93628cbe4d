// Command webhook is an example external plugin: the webhook output POSTs
// each batch of events as JSON to an HTTP endpoint, with retries. Build it
// and put it in the forwarder's plugin_dir (or reference it with
// `type: plugin`).
package main

import "github.com/auditforwarder/forwarder/plugins/sdk"

func main() { sdk.Serve(newFactory()) }
