package main

// Temporary: keeps dependencies in go.mod until the packages that use them land.
import (
	_ "github.com/knadh/koanf/parsers/yaml"
	_ "github.com/knadh/koanf/providers/basicflag"
	_ "github.com/knadh/koanf/providers/env"
	_ "github.com/knadh/koanf/providers/file"
	_ "github.com/knadh/koanf/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/mod/sumdb"
	_ "golang.org/x/mod/sumdb/dirhash"
	_ "golang.org/x/mod/zip"
	_ "golang.org/x/sync/singleflight"
)

func main() {}
