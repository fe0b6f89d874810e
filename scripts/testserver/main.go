// Command testserver serves x/mod's in-memory sumdb.TestServer over HTTP:
// the lookup reference of make bench-compare. It records every module
// version of a go.sum file (in file order) before it listens, so that it
// serves the same records as the sumd it is compared with.
//
//	go run ./scripts/testserver -gosum load.sum -key keys/x.key -listen 127.0.0.1:18282
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
)

func main() {
	gosum := flag.String("gosum", "", "go.sum file whose module versions to record (both lines of each)")
	keyFile := flag.String("key", "", "note signing key file (sumd keygen writes one)")
	listen := flag.String("listen", "127.0.0.1:18282", "loopback address to serve on")
	flag.Parse()
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		log.Fatal(err)
	}
	records, order, err := readGoSum(*gosum)
	if err != nil {
		log.Fatal(err)
	}
	ts := sumdb.NewTestServer(strings.TrimSpace(string(key)), func(path, vers string) ([]byte, error) {
		rec, ok := records[path+"@"+vers]
		if !ok {
			return nil, fmt.Errorf("%s@%s: not in %s", path, vers, *gosum)
		}
		return rec, nil
	})
	for _, m := range order {
		if _, err := ts.Lookup(context.Background(), m); err != nil {
			log.Fatal(err)
		}
	}
	log.Printf("testserver: %d records, listening on %s", len(order), *listen)
	log.Fatal(http.ListenAndServe(*listen, sumdb.NewServer(ts)))
}

// readGoSum pairs the zip and go.mod lines of each module version into the
// record text a checksum database serves.
func readGoSum(file string) (map[string][]byte, []module.Version, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	records := map[string][]byte{}
	var order []module.Version
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		vers, goMod := strings.CutSuffix(fields[1], "/go.mod")
		key := fields[0] + "@" + vers
		if !goMod {
			order = append(order, module.Version{Path: fields[0], Version: vers})
		}
		records[key] = append(records[key], sc.Text()+"\n"...)
	}
	return records, order, sc.Err()
}
