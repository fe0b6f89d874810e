package access

import (
	"context"
	"net/http"
)

// crossSite reports whether a browser says another site made a request
// (Sec-Fetch-Site cross-site, or same-site: another host of the company's
// domain), other than a top-level navigation: a page's image, script,
// frame or fetch. Such a request carries the Basic credentials or client
// certificate the browser holds for sumd, or needs none, and though the
// page cannot read the answer, it learns from it whether a version is
// recorded (an <object>'s load or error event tells a lookup's 200 from its
// 404: TestCrossSiteProbeInBrowser), and a lookup with -upstream records
// what the page names, for ever. A link followed from another site
// is a navigation of the top-level document: its answer goes to the user,
// not to the page. Clients other than browsers (the go command, sumd's,
// curl, Prometheus, proxies) send no Sec-Fetch-Site; browsers send it over
// HTTPS (and to loopback addresses) only, so over plain HTTP to another
// address nothing tells such requests apart.
func crossSite(site, mode, dest, method string) bool {
	switch site {
	case "", "same-origin", "none":
		return false
	}
	navigation := mode == "navigate" && dest == "document" && (method == http.MethodGet || method == http.MethodHead)
	return !navigation
}

// CrossSiteText is the body of the 403 answer to a cross-site request.
// It starts as the admin API's own refusal of a cross-site form does.
const CrossSiteText = "cross-origin request refused: a page of another site may not make a browser ask sumd; only a link to it may be followed\n"

var errCrossSite = &denial{http.StatusForbidden, reasonCrossSite, CrossSiteText[:len(CrossSiteText)-1], nil}

// CrossSite reports whether a request with these Sec-Fetch-Site,
// Sec-Fetch-Mode and Sec-Fetch-Dest headers and method is one the layer
// refuses as cross-site, and counts it if so, as the layer does for the
// requests it wraps. A listener the layer does not wrap (serve's read
// listener) answers those 403 with CrossSiteText.
func (l *Layer) CrossSite(site, mode, dest, method string) bool {
	if !crossSite(site, mode, dest, method) {
		return false
	}
	l.metrics.deny(reasonCrossSite)
	return true
}

// LogCrossSite logs a request CrossSite refused on a listener the layer
// does not wrap (serve's read listener, which has no *http.Request) as
// deny logs it on the main listener: path is the request's path as
// net/http parses it, remote the client's address.
func (l *Layer) LogCrossSite(ctx context.Context, path, remote string) {
	l.logDenied(ctx, path, errCrossSite.status, errCrossSite.reason, anonymousName, remote)
}
