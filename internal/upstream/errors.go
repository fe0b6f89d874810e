package upstream

import (
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/mod/module"
)

// A Kind classifies why a version could not be fetched and recorded. It
// decides the HTTP status, the message prefix, whether the failure is
// remembered by the negative cache and the metric outcome.
type Kind int

const (
	// KindGone: every upstream proxy answered 404 or 410 (or the upstream
	// checksum database has no record). 410, remembered.
	KindGone Kind = iota + 1
	// KindInvalid: the version as served is not a valid module (bad zip,
	// go.mod mismatch, over a size limit, invalid path or version). 410,
	// remembered.
	KindInvalid
	// KindMismatch: the upstream checksum database holds other hashes for
	// the version. 410, remembered.
	KindMismatch
	// KindUnavailable: an upstream answered 5xx or another error status, or
	// could not be reached. 502, not remembered.
	KindUnavailable
	// KindTimeout: an upstream did not answer within the request timeout.
	// 504, not remembered.
	KindTimeout
)

// String is the kind's metric label and log value.
func (k Kind) String() string {
	switch k {
	case KindGone:
		return "gone"
	case KindInvalid:
		return "invalid"
	case KindMismatch:
		return "mismatch"
	case KindUnavailable:
		return "error"
	case KindTimeout:
		return "timeout"
	}
	return "unknown"
}

// An Error is a failure to fetch, check or record one module version from
// upstream. Its text is shown to the go command's user (the server sends it
// as the text/plain body), so it always names the version and the reason:
//
//	not found: example.com/m@v1.2.3: upstream proxy has no such version
//	upstream proxy error: example.com/m@v1.2.3: GET https://proxy/…: 503 Service Unavailable
//
// The first form, used by the kinds that are answered 410 Gone, is the one
// sum.golang.org uses.
type Error struct {
	Kind   Kind
	Module module.Version
	Err    error // the reason
}

var _ interface {
	error
	HTTPStatus() int
} = (*Error)(nil)

func (e *Error) Error() string {
	prefix := "upstream proxy error"
	if e.Gone() {
		prefix = "not found"
	}
	return fmt.Sprintf("%s: %s@%s: %v", prefix, e.Module.Path, e.Module.Version, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Gone reports whether the failure is a property of the version as served
// (it will fail the same way if tried again soon), which the negative cache
// remembers, rather than a transient upstream failure, which it never does.
func (e *Error) Gone() bool {
	return e.Kind == KindGone || e.Kind == KindInvalid || e.Kind == KindMismatch
}

// HTTPStatus is the status the server answers with: 410 for a version that
// is gone or invalid, 502 for an upstream error, 504 for an upstream timeout.
func (e *Error) HTTPStatus() int {
	switch {
	case e.Gone():
		return http.StatusGone
	case e.Kind == KindTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

func newError(kind Kind, m module.Version, format string, args ...any) *Error {
	return &Error{Kind: kind, Module: m, Err: fmt.Errorf(format, args...)}
}

// kindOf returns the Kind of err, or 0 if err is not an *Error.
func kindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}
