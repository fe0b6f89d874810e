package access

import "strings"

// A need is what a request needs from its principal.
type need struct {
	role Role

	// subject is the route and its verb as a 403 starts its sentence,
	// "data tiles need" or "the admin API needs": a route's name may be
	// plural or singular.
	subject string

	adminRoute string // for an admin request, its metric label: fetch, upload, add or other

	// For a lookup: the database asked (its name) and the rest of the path
	// after /lookup/, for the patterns of a limited reader.
	db     string
	lookup string
}

// classify returns what a request for path needs. It mirrors the routing
// of internal/server (two roots: / and /sumdb/<name>/) and of the pages
// beside it; a path it does not know needs a reader, who then gets the
// server's 404. Where it cannot tell which route the server will take, it
// asks for the stronger role.
func (l *Layer) classify(path string) need {
	if path == "/healthz" {
		return need{role: RoleNone}
	}
	if l.cfg.AdminAPI && (path == "/admin" || strings.HasPrefix(path, "/admin/")) {
		return need{role: Admin, subject: "the admin API needs", adminRoute: adminRoute(path)}
	}
	db, rest, known := l.database(path)
	if !known {
		// /sumdb/<a database not served>/…: the server answers 404 to all
		// of it, but a name this layer was not told about may still be
		// served (a mirror added without telling it): fail closed on
		// anything that could be a data tile.
		if strings.Contains(path, "/tile/") && strings.Contains(path, "/data/") {
			return need{role: Auditor, subject: "data tiles need"}
		}
		// Likewise a limited reader's patterns hold for its lookups.
		if name, lookup, ok := strings.Cut(path[len("/sumdb/"):], "/lookup/"); ok {
			return need{role: Reader, db: name, lookup: lookup}
		}
		return need{role: Reader}
	}
	switch {
	case rest == "/latest", rest == "/supported":
		return need{role: Reader}
	case strings.HasPrefix(rest, "/lookup/"):
		return need{role: Reader, db: db, lookup: rest[len("/lookup/"):]}
	case strings.HasPrefix(rest, "/tile/"):
		if isDataTile(rest[len("/tile/"):]) {
			return need{role: Auditor, subject: "data tiles need"}
		}
		return need{role: Reader}
	case rest != path:
		return need{role: Reader} // the rest of /sumdb/<name>/ is a 404
	}
	switch path {
	case "/", "/module", "/record", "/status":
		return need{role: Auditor, subject: "the status page needs"}
	case "/metrics":
		return need{role: Auditor, subject: "the metrics need"}
	}
	return need{role: Reader}
}

// database splits path into the database it addresses and the protocol
// path: the server's own at the root, or one served under /sumdb/<name>/.
// known is false for /sumdb/… paths of no database served. Names may
// contain slashes and nest (corp.example and corp.example/eu): the longest
// name that matches wins, as the server routes (serve's withMirrors), or
// /sumdb/corp.example/eu/tile/8/data/… would be judged as a 404 of
// corp.example's while corp.example/eu serves its data tile.
func (l *Layer) database(path string) (name, rest string, known bool) {
	if !strings.HasPrefix(path, "/sumdb/") {
		return l.cfg.Databases[0], path, true
	}
	for _, n := range l.cfg.Databases {
		if r, ok := strings.CutPrefix(path, "/sumdb/"+n+"/"); ok && len(n) > len(name) {
			name, rest, known = n, "/"+r, true
		}
	}
	return name, rest, known
}

// isDataTile reports whether a tile path "H/L/N…" names a data tile, as
// x/mod's tlog.ParseTilePath reads it: level "data".
func isDataTile(tile string) bool {
	_, rest, ok := strings.Cut(tile, "/")
	level, _, _ := strings.Cut(rest, "/")
	return ok && level == "data"
}

// adminRoute is the metric label of an admin API path: a fixed set.
func adminRoute(path string) string {
	switch path {
	case "/admin/fetch":
		return "fetch"
	case "/admin/upload":
		return "upload"
	case "/admin/add":
		return "add"
	}
	return "other"
}
