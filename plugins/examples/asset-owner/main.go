// Command asset-owner is an example external plugin: the asset_owner
// transform adds to each event the owner of the cloud asset it is about,
// from a CSV table. Build it, put the binary in the forwarder's plugin_dir
// (or reference it with `type: plugin`), and it runs beside the built-ins.
package main

import "github.com/auditforwarder/forwarder/plugins/sdk"

func main() { sdk.Serve(newFactory()) }
