// The OCI registry the tests push charts and plugins to: CNCF distribution's `registry`
// server, built with only what the tests use (filesystem storage, htpasswd logins).
// Upstream's cmd/registry also links the S3, Azure and GCS storage drivers, whose SDKs
// were most of its build time.
package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

func main() {
	// Exits non-zero on its own when a command fails.
	_ = registry.RootCmd.Execute()
}
