package upstream

import (
	"context"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/mod/module"
)

// DefaultMaxClientFetches is the per-client cap sumd serve configures by
// default (-upstream-per-client): a quarter of DefaultMaxFetches, so that
// it takes four addresses, not one, to hold every fetch slot. A go
// command on a machine with more CPUs may be refused some of a cold
// build's first lookups, as it is by the global cap on a busy server.
const DefaultMaxClientFetches = 4

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
