package serve

import (
	"net/http"

	"github.com/valyala/fasthttp"
)

// oddTargetText is the answer to CONNECT and to the request target *.
const oddTargetText = "bad request: sumd serves paths: no CONNECT, no * target\n"

// oddTarget reports whether a request is a CONNECT or has the target *
// (`OPTIONS *`): sumd serves neither, and both listeners answer them 400
// before anything else looks at the target. Left to themselves, the
// main listener's ServeMux answered CONNECT with its own "404 page not
// found" and net/http `OPTIONS *` with an empty 200, and the read
// listener's clean-path redirect sent CONNECT to / and `OPTIONS *` to
// /%2A.
func oddTarget(method, target string) bool {
	return method == http.MethodConnect || target == "*"
}

// refuseOddTargets answers oddTarget requests on a net/http listener,
// whose Server must set DisableGeneralOptionsHandler for `OPTIONS *` to
// get here.
func refuseOddTargets(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !oddTarget(r.Method, r.RequestURI) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(oddTargetText))
	})
}

// fastOddTarget answers an oddTarget request on the read listener, and
// reports whether it did.
func fastOddTarget(c *fasthttp.RequestCtx) bool {
	if !oddTarget(string(c.Method()), string(c.Request.Header.RequestURI())) {
		return false
	}
	fastText(c, http.StatusBadRequest, oddTargetText)
	return true
}
