package oci

import "errors"

// DefaultMaxPassBytes bounds the blob bytes one pass downloads: eight zips
// at the go command's limit, and thousands of modules of usual sizes. The
// bounds of a request, a repository and an artifact do not bound a pass,
// which a first pass over a large registry, whoever holds a configured key
// pushing many versions, or a registry serving tampered blobs on every
// pass could otherwise make download without end.
const DefaultMaxPassBytes = 4 << 30

// A passBudget is the blob bytes one pass may download (Options.
// MaxPassBytes) and those it has. A pass runs in one goroutine.
type passBudget struct {
	max, used int64
	// granted means the pass was granted an artifact's layers already.
	granted bool
}

// spend counts n bytes downloaded. A nil budget counts nothing.
func (b *passBudget) spend(n int64) {
	if b != nil {
		b.used += n
	}
}

// spent reports whether the pass has downloaded its budget: signatures
// and their payloads, read before the layers, are counted but not
// checked beforehand, so the pass stops before the next artifact.
func (b *passBudget) spent() bool {
	return b != nil && b.used >= b.max
}

// grant reports whether the pass may download layers of need bytes: they
// fit in what remains, or they are the first the pass downloads, so that
// each pass gets on, even past an artifact larger than the whole budget.
func (b *passBudget) grant(need int64) bool {
	if b == nil {
		return true
	}
	if b.granted && b.used+need > b.max {
		return false
	}
	b.granted = true
	return true
}

// errBudgetSpent is hash's error for layers the pass's budget cannot
// cover: nothing is known of the artifact, which the next pass examines
// first (budgetStop).
var errBudgetSpent = errors.New("the download budget of the pass cannot cover the layers")

// A budgetStop stops a pass at the artifact, "host/repository:tag", that
// its download budget cannot cover.
type budgetStop struct{ at string }

func (e *budgetStop) Error() string {
	return "the download budget of the pass is spent at " + e.at
}
