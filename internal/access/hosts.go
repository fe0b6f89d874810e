package access

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// allowedHost reports whether a request naming host (its Host header, a
// port allowed) may be answered, given the names of Config.AllowedHosts
// (lowercase, "*.name" for any name under name; none: any host).
//
// The check is against DNS rebinding: a page on the attacker's site,
// whose name the attacker points at an internal sumd's address after it
// loaded, reads sumd as its own origin from an employee's browser. Such a
// request names the attacker's host, never one of sumd's, so a server that
// knows its names refuses it. IP addresses and localhost cannot be
// rebound (a browser sends the name it resolved) and are always answered,
// so health checks and probes that reach sumd by address keep working.
func allowedHost(allowed []string, host string) bool {
	if len(allowed) == 0 {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if _, err := netip.ParseAddr(host); err == nil || host == "localhost" { // an IPv6 zone too
		return true
	}
	for _, a := range allowed {
		if host == a {
			return true
		}
		// "*.name": one label or more before ".name", none empty.
		if suffix, ok := strings.CutPrefix(a, "*"); ok {
			if sub, ok := strings.CutSuffix(host, suffix); ok && sub != "" && !strings.HasPrefix(sub, ".") && !strings.HasSuffix(sub, ".") && !strings.Contains(sub, "..") {
				return true
			}
		}
	}
	return false
}

// misdirected answers a request for a host sumd does not serve.
func misdirected(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusMisdirectedRequest)
	w.Write([]byte(MisdirectedText))
}

// MisdirectedText is the body of the 421 answer to a request for a host
// sumd does not serve.
const MisdirectedText = "misdirected request: this server does not answer to that host name (see -allowed-hosts)\n"

// Misdirected reports whether a request naming host (its Host header) is
// for a host sumd does not serve, and counts it if so, as the layer does
// for the requests it wraps. A listener the layer does not wrap (serve's
// read listener) answers those 421 with MisdirectedText.
func (l *Layer) Misdirected(host string) bool {
	if allowedHost(l.cfg.AllowedHosts, host) {
		return false
	}
	l.metrics.misdirected()
	return true
}
