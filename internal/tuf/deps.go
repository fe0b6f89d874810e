package tuf

// Temporary: keeps the go-tuf dependencies required until the package uses
// them. Delete once real imports exist.
import (
	_ "github.com/sigstore/sigstore/pkg/signature"
	_ "github.com/theupdateframework/go-tuf/v2/metadata"
	_ "github.com/theupdateframework/go-tuf/v2/metadata/config"
	_ "github.com/theupdateframework/go-tuf/v2/metadata/updater"
)
