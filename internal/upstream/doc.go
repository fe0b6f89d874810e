// Package upstream records module versions on first lookup, fetched from
// the company's module proxy, as sum.golang.org does with proxy.golang.org.
//
// Three parts, each usable alone:
//
//   - A [Fetcher] fetches a version's .mod and .zip from a GOPROXY-style list
//     of proxies ([ParseList]), with credentials read from files ([Auth]),
//     keeps the zip in memory, or streams it to a temporary file if it is
//     larger than 1 MiB, under the go command's size limits, validates it
//     exactly as the go command would (modhash.HashZip) and returns its
//     go.sum record.
//   - A [Checker] verifies computed hashes against an upstream checksum
//     database (sum.golang.org, reached through the proxy's /sumdb/
//     endpoint), with x/mod's own verifying client, before anything public
//     is recorded.
//   - A [Recorder] is the sumdb.ServerOps the HTTP server serves: a lookup
//     the log misses is fetched, cross-checked and added to the log, then
//     answered. Concurrent first lookups of one version share one fetch.
//
// # Errors
//
// Every failure to obtain a version is an [*Error] whose HTTPStatus the
// server answers with and whose text the go command shows its user:
//
//	410 not found: M@V: <reason>             no proxy has it, it is invalid, or
//	                                         the upstream checksum database disagrees
//	502 upstream proxy error: M@V: <reason>  an upstream failed or is unreachable
//	504 upstream proxy error: M@V: <reason>  an upstream timed out
//	503 server error: M@V: <reason>          sumd could not store the zip in its
//	                                         temporary directory, or read it back
//
// 410s are remembered for a short TTL (the negative cache); 502s, 503s and
// 504s never are. Nothing about a failed version is kept anywhere else: no record,
// no temporary file.
//
// Anyone who can look a version up reads these texts, so they never name an
// upstream proxy's URL or host or a local path; a proxy's own one-line reason
// for a 404 is passed on with its URL and host replaced. The detail (which
// proxy, which request, which file) is in Error.Cause, which the logs show.
//
// # Trust
//
// What sumd records is, for ever, what every client will accept. So the
// Fetcher accepts only what the go command would accept from the same
// proxy, and sumd never fetches "direct" from version control: what is
// hashed is what developers download. The Checker makes sure that, for
// public modules, that is also what the rest of the world downloads.
package upstream
