package access

import (
	"context"
	"log/slog"
)

// LogHandler returns h adding to every record logged with a request's
// context the credential that made the request ("credential") and, unless
// the record has one, the client's address ("remote"). So every line a
// request causes — the admin API's write, the upstream recorder's "recorded
// from upstream", a failure deep in a handler — says who caused it, which
// makes the log an audit trail without each package knowing about access.
func LogHandler(h slog.Handler) slog.Handler { return &logHandler{h} }

type logHandler struct{ slog.Handler }

var _ slog.Handler = (*logHandler)(nil)

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	p, ok := FromContext(ctx)
	if !ok {
		return h.Handler.Handle(ctx, r)
	}
	hasRemote, hasCredential := false, false
	r.Attrs(func(a slog.Attr) bool {
		hasRemote = hasRemote || a.Key == "remote"
		hasCredential = hasCredential || a.Key == "credential"
		return !(hasRemote && hasCredential)
	})
	r = r.Clone()
	if !hasCredential {
		r.AddAttrs(slog.String("credential", p.Name))
	}
	if remote, _ := ctx.Value(remoteKey{}).(string); !hasRemote && remote != "" {
		r.AddAttrs(slog.String("remote", remote))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{h.Handler.WithAttrs(as)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{h.Handler.WithGroup(name)}
}
