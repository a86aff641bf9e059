// Command registry is CNCF distribution's registry with only the storage it needs here: the
// filesystem driver. Upstream's cmd/registry also links the S3, GCS and Azure drivers and
// htpasswd/token auth; leaving them out roughly halves the build. The pull-through proxy stays
// linked (the HTTP handlers import it) but is never configured: testbed/registry.ts writes a
// config without a `proxy` section, so nothing is ever fetched from an upstream registry.
package main

import (
	"os"

	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

func main() {
	if err := registry.RootCmd.Execute(); err != nil {
		os.Exit(1)
	}
}
