package access

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the access layer's counters. Every label comes from a fixed
// set or from the operator's credential files, never from the request.
type metrics struct {
	denied        *prometheus.CounterVec // sumd_access_denied_total{reason}
	checks        *prometheus.CounterVec // sumd_access_basic_checks_total{result}
	adminRequests *prometheus.CounterVec // sumd_admin_requests_total{credential,route,outcome}
	misdirects    prometheus.Counter     // sumd_access_misdirected_total
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "access", Name: "denied_total",
			Help: "Requests refused by the access layer, by reason.",
		}, []string{"reason"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "access", Name: "basic_checks_total",
			Help: "Basic credentials checked, by result: cached (no bcrypt), verified (bcrypt accepted), wrong, busy (no bcrypt slot), shared (the result of another request's bcrypt run of the same credentials), unchecked (at /healthz, which runs no bcrypt: not verified before).",
		}, []string{"result"}),
		adminRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "admin", Name: "requests_total",
			Help: "Requests to the /admin/ API, by credential (anonymous: none given; invalid: refused), route (fetch, upload, add, other) and outcome (the HTTP status code).",
		}, []string{"credential", "route", "outcome"}),
		misdirects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "access", Name: "misdirected_total",
			Help: "Requests naming a host outside -allowed-hosts, answered 421: DNS rebinding, or a client reaching sumd by a name it was not told.",
		}),
	}
	for _, r := range allReasons {
		m.denied.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.denied, m.checks, m.adminRequests, m.misdirects)
	}
	return m
}

func (m *metrics) deny(reason string)  { m.denied.WithLabelValues(reason).Inc() }
func (m *metrics) basic(result string) { m.checks.WithLabelValues(result).Inc() }
func (m *metrics) misdirected()        { m.misdirects.Inc() }

func (m *metrics) admin(credential, route string, code int) {
	m.adminRequests.WithLabelValues(credential, route, strconv.Itoa(code)).Inc()
}

// An adminWriter remembers an admin request's status and credential for
// sumd_admin_requests_total.
type adminWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
	credential  string
}

var _ http.ResponseWriter = (*adminWriter)(nil)

func (w *adminWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *adminWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (the admin API
// extends an upload's deadlines through it).
func (w *adminWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setCredential names the credential of an admin request, for its count.
func setCredential(w http.ResponseWriter, name string) {
	if aw, ok := w.(*adminWriter); ok {
		aw.credential = name
	}
}
