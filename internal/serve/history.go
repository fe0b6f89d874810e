package serve

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// The history of tree heads behind the status's records per day and last
// commit time is kept in the log's auxiliary state, not only in memory:
// records carry no time, so a history held in memory would start empty at
// every restart and the chart would show nothing for a month after an
// upgrade. It is small (one head a day, maxHistory days: a few KB) and
// written at most every historySaveInterval while the log grows, plus once
// at shutdown: a handful of small auxiliary commits a day.
const (
	historyKey          = "status/history"
	maxHistory          = 92 // days: a quarter, for the chart's month and some context
	historySaveInterval = 10 * time.Minute
)

// pollInterval is how often the history looks at the log's head. It
// polls rather than waiting on the log's published head (Head.Next): with
// a PostgreSQL database other processes grow the tree too, and this
// process learns of their heads by its own refresh, which a poll of Tree
// sees as well; a read of the in-memory head once a second costs nothing.
var pollInterval = time.Second

// headSource is the log as the history reads it. *tlog.Log implements it.
type headSource interface {
	Tree(ctx context.Context) (tlog.Tree, error)
	Aux(ctx context.Context, key string) ([]byte, error)
	SetAux(ctx context.Context, key string, value []byte) error
}

// A history is a bounded record of the log's tree heads over time.
type history struct {
	src    headSource
	logger *slog.Logger
	now    func() time.Time

	mu    sync.Mutex
	state historyState // guarded by mu
	dirty bool         // state differs from what is saved; guarded by mu
}

// historyState is what is saved: the JSON of the auxiliary value.
type historyState struct {
	// Heads holds the first head the history saw, then the last head of
	// each day, oldest first.
	Heads      []Head     `json:"heads"`
	LastCommit *time.Time `json:"last_commit,omitempty"`
	// Trimmed means heads were dropped to keep maxHistory days: Heads[0]
	// is then the last of a day whose earlier heads are gone, not the
	// first head seen. The number of heads cannot tell: maxHistory+1
	// days of one head each, none dropped, are as many.
	Trimmed bool `json:"trimmed,omitempty"`
}

// loadHistory reads the saved history of src and brings it up to date
// with the current head, as seen at now().
func loadHistory(ctx context.Context, src headSource, logger *slog.Logger, now func() time.Time) (*history, error) {
	h := &history{src: src, logger: logger, now: now}
	data, err := src.Aux(ctx, historyKey)
	if err != nil {
		return nil, err
	}
	if data != nil {
		if err := json.Unmarshal(data, &h.state); err != nil {
			// It is only status: start afresh rather than refuse to serve.
			logger.Warn("the status history is unreadable; starting a new one", "err", err)
			h.state = historyState{}
		}
	}
	if err := h.poll(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// poll looks at the current head and records it if the tree grew.
// Records added while no server ran (sumd add) count as committed when the
// server sees them.
func (h *history) poll(ctx context.Context) error {
	tree, err := h.src.Tree(ctx)
	if err != nil {
		return err
	}
	h.observe(tree, h.now().UTC())
	return nil
}

// observe records tree, seen at now.
func (h *history) observe(tree tlog.Tree, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	head := Head{Time: now, TreeSize: tree.N, RootHash: base64.StdEncoding.EncodeToString(tree.Hash[:])}
	hs := h.state.Heads
	switch {
	case len(hs) == 0:
		h.state.Heads = []Head{head}
	case hs[len(hs)-1].TreeSize == tree.N:
		return
	case len(hs) > 1 && sameDay(hs[len(hs)-1].Time, now):
		hs[len(hs)-1] = head // the first head stays: it is where counting starts
	default:
		h.state.Heads = append(hs, head)
		if len(h.state.Heads) > maxHistory+1 {
			h.state.Heads = h.state.Heads[len(h.state.Heads)-maxHistory-1:]
			h.state.Trimmed = true
		}
	}
	if len(hs) > 0 {
		h.state.LastCommit = &now
	}
	h.dirty = true
}

func sameDay(a, b time.Time) bool {
	return a.UTC().Format(time.DateOnly) == b.UTC().Format(time.DateOnly)
}

// save writes the history if it changed.
func (h *history) save(ctx context.Context) {
	h.mu.Lock()
	if !h.dirty {
		h.mu.Unlock()
		return
	}
	data, err := json.Marshal(h.state)
	h.dirty = false
	h.mu.Unlock()
	if err == nil {
		err = h.src.SetAux(ctx, historyKey, data)
	}
	if err != nil {
		h.logger.Warn("failed to save the status history", "err", err)
		h.mu.Lock()
		h.dirty = true
		h.mu.Unlock()
	}
}

// part polls the head every pollInterval and saves the history every
// historySaveInterval and when the server stops. It never dies: the status
// is not worth stopping a server for, and a log that cannot be read or
// written stops the server through its own part.
func (h *history) part() Part {
	return Part{
		Name:   "status history",
		Report: h.report,
		Run: func(ctx context.Context) error {
			poll := time.NewTicker(pollInterval)
			defer poll.Stop()
			lastSave := h.now()
			for {
				select {
				case <-ctx.Done():
					// The log closes after the parts stop: it can still take this.
					sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					h.save(sctx)
					cancel()
					return nil
				case <-poll.C:
				}
				if err := h.poll(ctx); err != nil {
					h.logger.Debug("status history: failed to read the tree head", "err", err)
				}
				if h.now().Sub(lastSave) >= historySaveInterval {
					h.save(ctx)
					lastSave = h.now()
				}
			}
		},
	}
}

// report adds the last commit, the records per day and the heads to s.
func (h *history) report(s *Status) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.Log.LastCommit = h.state.LastCommit
	s.Log.Heads = append([]Head(nil), h.state.Heads...)
	s.Log.RecordsPerDay = perDay(h.state.Heads, h.state.Trimmed)
}

// perDay counts the records added on each day of heads: the day's last
// size minus the size of the head before it (the last of an earlier day, or
// the first head). The first head's own day counts from it, but for a
// trimmed history's (maxHistory days kept): its oldest head is the last of
// a day whose earlier heads are gone, so that day's count is unknown, not 0.
func perDay(heads []Head, trimmed bool) []DayCount {
	var out []DayCount
	for i, hd := range heads {
		if i+1 < len(heads) && sameDay(heads[i+1].Time, hd.Time) {
			continue // the first head, with a later one on its day
		}
		if i == 0 && trimmed {
			continue // trimmed: only where the next day counts from
		}
		before := hd.TreeSize
		if i > 0 {
			before = heads[i-1].TreeSize
		}
		out = append(out, DayCount{Day: hd.Time.UTC().Format(time.DateOnly), Records: hd.TreeSize - before})
	}
	return out
}
