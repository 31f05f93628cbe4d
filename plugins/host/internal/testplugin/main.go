// Command testplugin serves the host tests' components.
package main

import (
	"github.com/auditforwarder/forwarder/plugins/host/internal/testcomp"
	"github.com/auditforwarder/forwarder/plugins/sdk"
)

func main() { sdk.Serve(testcomp.Factories()...) }
