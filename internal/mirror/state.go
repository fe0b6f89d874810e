package mirror

import (
	"encoding/base64"
	"sync"
	"time"
)

// state is what a follower knows beyond its log, for the status.
type state struct {
	mu         sync.Mutex
	checked    time.Time // when the held head was last known to be the origin's latest
	originN    int64     // the origin's tree size last fetched
	problem    string    // the last round's failure, one line safe for anonymous clients; "" if it went well
	securityN  int       // security events since the start
	lastSecure string    // the last one's kind
}

func newState() *state { return &state{} }

func (s *state) security(se *SecurityError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.securityN++
	s.lastSecure = se.Kind
	s.problem = "refused the origin's data (" + se.Kind + "): see the SECURITY line in the server log"
}

func (s *state) setProblem(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problem = p
}

// setOrigin keeps n, the tree size the origin last signed, as the metric
// does: not the largest seen, which a refused fork claiming a larger tree
// would leave in the lag after the origin is honest again, until a restart.
func (s *state) setOrigin(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.originN = n
}

func (s *state) setChecked(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checked = t
}

func (s *state) lastChecked() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checked
}

// Status is a mirror's state, for sumd serve's status (shown to anonymous
// clients: no URLs, no error texts).
type Status struct {
	Name     string `json:"name"`    // the origin's name
	Partial  bool   `json:"partial"` // only some records are held
	Online   bool   `json:"online"`  // it follows an origin (else: bundles only)
	TreeSize int64  `json:"tree_size"`
	RootHash string `json:"root_hash"`
	// OriginTreeSize is the origin's tree size last fetched (at least the
	// mirror's); Lag is how many records the mirror is behind it.
	OriginTreeSize int64 `json:"origin_tree_size"`
	Lag            int64 `json:"lag"`
	// Checked is when the held head was last known to be the origin's
	// latest: how old the mirror's view may be.
	Checked *time.Time `json:"checked,omitempty"`
	// Problem is what went wrong in the last round, if anything.
	Problem        string `json:"problem,omitempty"`
	SecurityEvents int    `json:"security_events"`
}

// Status returns the mirror's state now. It is cheap: the published head
// and what the follower keeps in memory.
func (f *Follower) Status() Status {
	h := f.log.Published()
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	s := Status{
		Name: f.name, Partial: f.opts.Select != nil || f.opts.Partial, Online: f.opts.Client != nil,
		TreeSize: h.Tree.N, RootHash: base64.StdEncoding.EncodeToString(h.Tree.Hash[:]),
		OriginTreeSize: max(f.st.originN, h.Tree.N), Problem: f.st.problem, SecurityEvents: f.st.securityN,
	}
	s.Lag = s.OriginTreeSize - s.TreeSize
	if !f.st.checked.IsZero() {
		t := f.st.checked.UTC()
		s.Checked = &t
	}
	return s
}
