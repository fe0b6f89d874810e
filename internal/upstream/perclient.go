package upstream

import (
	"context"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/mod/module"
)

// DefaultMaxClientFetches is the per-client cap sumd serve configures by
// default (-upstream-per-client): none. A go command looks up as many
// versions at once as its machine has CPUs, and a refused first lookup
// fails its build, so a cap below the builders' CPUs would fail cold
// builds on every machine larger than it; operators whose clients reach
// sumd directly and are not all trusted set one (4 keeps four addresses,
// not one, from holding every fetch slot). Abandoned fetches are cancelled
// either way, so clients that hang up hold no slot.
const DefaultMaxClientFetches = 0

// clientFetches counts each client's first lookups waiting for upstream.
type clientFetches struct {
	max int
	mu  sync.Mutex
	n   map[string]int // by clientKey; guarded by mu, no zero entries
}

// acquire counts one more lookup of key, unless key has max already.
func (c *clientFetches) acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= c.max {
		return false
	}
	c.n[key]++
	return true
}

func (c *clientFetches) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key]--; c.n[key] <= 0 {
		delete(c.n, key)
	}
}

// clientSlot counts a first lookup of m against its client's
// MaxClientFetches, or refuses it with ErrClientBusy. The caller calls
// release once the lookup stops waiting.
func (r *Recorder) clientSlot(ctx context.Context, m module.Version) (release func(), err error) {
	if r.perClient == nil {
		return func() {}, nil
	}
	addr, admin := r.client(ctx)
	key := clientKey(addr)
	if admin || key == "" {
		return func() {}, nil
	}
	if !r.perClient.acquire(key) {
		r.metrics.refuseClient()
		r.logger.InfoContext(ctx, "upstream fetch refused: too many in flight for this client", "module", m.Path, "version", m.Version, "client", key, "max", r.perClient.max)
		return nil, ErrClientBusy
	}
	return func() { r.perClient.release(key) }, nil
}

// clientKey is the client an address counts as: an IPv4 address (an
// IPv4-mapped IPv6 one too), the /64 of an IPv6 one, since a host is
// usually given a whole /64 and could otherwise be as many clients as it
// likes. An address that is not an IP (a Unix socket's) is itself.
func clientKey(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}
