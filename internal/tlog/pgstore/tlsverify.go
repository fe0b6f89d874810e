package pgstore

import (
	"crypto/tls"
	"net"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// unverifiedHosts returns the hosts of cfg (its host and its fallbacks)
// sumd may reach over the network without verifying the server's
// certificate: sslmode disable, allow, prefer (pgx's default) or require
// without sslrootcert. Unix sockets and loopback addresses are left out.
// Whoever answers for such a host in between could acknowledge a COMMIT
// the database never saw, and sumd would sign and publish a head that is
// not stored: a fork once it is gone.
func unverifiedHosts(cfg *pgconn.Config) []string {
	var hosts []string
	check := func(host string, tc *tls.Config) {
		if strings.HasPrefix(host, "/") || host == "localhost" || verified(tc) {
			return
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return
		}
		if !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	check(cfg.Host, cfg.TLSConfig)
	for _, f := range cfg.Fallbacks {
		check(f.Host, f.TLSConfig)
	}
	return hosts
}

// verified reports whether tc checks the server's certificate: pgx's
// verify-full, or its verify-ca (which skips Go's check of the name and
// checks the chain itself).
func verified(tc *tls.Config) bool {
	return tc != nil && (!tc.InsecureSkipVerify || tc.VerifyPeerCertificate != nil)
}
