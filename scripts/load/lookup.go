package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// A lookup request is what one go command asks: a lookup, as for each new
// module version, then a full hash tile, as it does to verify.
func lookupRequest(r *rand.Rand, records int) (lookup, tile string) {
	i := r.IntN(records)
	lookup = fmt.Sprintf("/lookup/example.com/load/m%d@v1.0.%d", i/1000, i%1000)
	t := tlog.Tile{H: 8, L: 0, N: int64(r.IntN(max(records>>8, 1))), W: 256}
	return lookup, "/" + t.Path()
}

func runLookups(o options, res *results) {
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	c := client(o)
	var wg sync.WaitGroup
	for i := range o.clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for ctx.Err() == nil {
				lookup, tile := lookupRequest(r, o.records)
				res.do(ctx, c, "lookup", get(o.url+lookup))
				res.do(ctx, c, "tile", get(o.url+tile))
			}
		})
	}
	wg.Wait()
}

func get(url string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return req
}
