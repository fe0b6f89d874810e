package upstream

import (
	"errors"
	"fmt"
	"log/slog"
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
	// KindLocal: sumd itself failed, not the upstream nor the version: its
	// temporary directory could not store the zip (a full disk) or give it
	// back to be hashed (a file removed or unreadable), or the Checker
	// could not save its state file. 503, not
	// remembered; no other source is tried after "|", since the zip would
	// go to the same directory.
	KindLocal
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
	case KindLocal:
		return "local"
	}
	return "unknown"
}

// An Error is a failure to fetch, check or record one module version from
// upstream. Its text is shown to the go command's user (the server sends it
// as the text/plain body), so it always names the version and the reason:
//
//	not found: example.com/m@v1.2.3: upstream proxy has no such version
//	upstream proxy error: example.com/m@v1.2.3: upstream proxy answered 503 Service Unavailable
//	server error: example.com/m@v1.2.3: sumd cannot store the module zip now; try again later
//
// The first form, used by the kinds that are answered 410 Gone, is the one
// sum.golang.org uses; the last is KindLocal's.
//
// Anyone who can look a version up sees that text, so it never names an
// upstream proxy's URL or host, or a local path: those are in Cause, which
// the logs show (an Error is a slog.LogValuer) and clients never do.
type Error struct {
	Kind   Kind
	Module module.Version
	// Err is the reason shown to clients: no URL, host name or local path.
	Err error
	// Cause, if not nil, is the failure behind Err with the detail only
	// the operator may see.
	Cause error
}

var _ interface {
	error
	HTTPStatus() int
	slog.LogValuer
} = (*Error)(nil)

// Error is the text clients see.
func (e *Error) Error() string {
	prefix := "upstream proxy error"
	switch {
	case e.Gone():
		prefix = "not found"
	case e.Kind == KindLocal:
		prefix = "server error"
	}
	return fmt.Sprintf("%s: %s@%s: %v", prefix, e.Module.Path, e.Module.Version, e.Err)
}

// Detail is the text with the cause, for logs and the operator.
func (e *Error) Detail() string {
	if e.Cause == nil {
		return e.Error()
	}
	return e.Error() + " (" + e.Cause.Error() + ")"
}

// LogValue makes logs show Detail rather than the client's text.
func (e *Error) LogValue() slog.Value { return slog.StringValue(e.Detail()) }

// Unwrap returns the reason and the cause, so errors.Is and errors.As see
// both.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// Gone reports whether the failure is a property of the version as served
// (it will fail the same way if tried again soon), which the negative cache
// remembers, rather than a transient upstream failure, which it never does.
func (e *Error) Gone() bool {
	return e.Kind == KindGone || e.Kind == KindInvalid || e.Kind == KindMismatch
}

// HTTPStatus is the status the server answers with: 410 for a version that
// is gone or invalid, 502 for an upstream error, 504 for an upstream
// timeout, 503 for sumd's own failure (the server adds Retry-After).
func (e *Error) HTTPStatus() int {
	switch {
	case e.Gone():
		return http.StatusGone
	case e.Kind == KindTimeout:
		return http.StatusGatewayTimeout
	case e.Kind == KindLocal:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// newError returns an Error whose reason is safe to show as it is.
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
