package serve

import "net/http"

// closeOnError answers an error to a request with a body (a
// Content-Length, or chunked) with Connection: close. Without it net/http,
// to keep the connection, reads up to 256 KiB of what the handler left
// unread before the answer goes out: a client that declares a body and
// never sends it (or sends it slowly) got its 401 or 405 only when the
// read timeout cut it. A body the handler read to its end is closed on
// too, which costs the client a new connection after an error.
//
// It serves every net/http listener, in front of the access layer and the
// routes, so that both their refusals go through it; requests without a
// body, the go command's, pass straight through, and so do HTTP/2's:
// their server reads no unread body before the answer, and turns a
// Connection: close into a GOAWAY of the connection the client's other
// requests share.
func closeOnError(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.ProtoMajor >= 2 {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&errorCloser{w}, r)
	})
}

// An errorCloser is the ResponseWriter of closeOnError.
type errorCloser struct{ http.ResponseWriter }

func (w *errorCloser) WriteHeader(code int) {
	if code >= 400 {
		w.Header().Set("Connection", "close")
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (the admin API
// extends the read deadline of authenticated uploads).
func (w *errorCloser) Unwrap() http.ResponseWriter { return w.ResponseWriter }
