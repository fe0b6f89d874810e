package main

import (
	"context"
	"fmt"

	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/seed"
)

// A remoteSink records through the admin API of a running sumd.
type remoteSink struct{ c *admin.Client }

var _ seed.Sink = remoteSink{}

// remoteChunk is the records of one POST /admin/add: a few MB of go.sum
// lines, one commit on the server.
const remoteChunk = 16384

func (s remoteSink) Chunk() int { return remoteChunk }

func (s remoteSink) Check(ctx context.Context, recs []gosum.Record) ([]seed.Conflict, error) {
	res, err := s.c.Add(ctx, recs, true)
	if err != nil {
		return nil, err
	}
	var found []seed.Conflict
	for _, c := range res.Conflicts {
		i := (c.Line - 1) / 2 // Client.Add writes two lines per record
		recorded, err := gosum.Parse([]byte(c.Recorded))
		if err != nil || i < 0 || i >= len(recs) {
			return nil, fmt.Errorf("the server named a conflict the client cannot place: %+v", c)
		}
		found = append(found, seed.Conflict{Index: i, ID: c.ID, Recorded: recorded})
	}
	for range res.ConflictCount - len(res.Conflicts) {
		found = append(found, seed.Conflict{Index: -1})
	}
	return found, nil
}

func (s remoteSink) Add(ctx context.Context, recs []gosum.Record) (int64, int64, error) {
	res, err := s.c.Add(ctx, recs, false)
	if err != nil {
		return 0, 0, err
	}
	return int64(res.New), res.TreeSize, nil
}
