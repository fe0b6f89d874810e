// Package tuf publishes the verifier keys of a checksum database as a TUF
// repository (The Update Framework, through go-tuf v2), so that clients
// pin one root.json once and follow every later key rotation safely, and
// learns them back on the client side.
//
// # What is published
//
// Two targets describe the database NAME ("/" in the name becomes "_"):
//
//	sumdb/NAME.vkey   its verifier keys, one per line, oldest first: the
//	                  log's whole signing set (two keys during a rotation)
//	sumdb/NAME.json   {"name", "verifier_keys", "url", "tile_height": 8}
//
// # Layout on disk
//
// A repository directory DIR holds the public metadata and targets, laid
// out exactly as clients request them with consistent snapshots:
//
//	DIR/metadata/N.root.json        every root version, kept for ever
//	DIR/metadata/V.targets.json     every targets version
//	DIR/metadata/V.snapshot.json    every snapshot version
//	DIR/metadata/timestamp.json     the only file ever replaced
//	DIR/targets/sumdb/<sha256>.NAME.vkey, <sha256>.NAME.json
//	DIR/.lock                       serialises writers (sumd tuf, sumd serve),
//	                                on unix only (flock): elsewhere run one
//	                                writer, and one init, at a time
//	DIR/.init-*                     where Init builds metadata/ and targets/
//
// Private keys are PKCS#8 PEM Ed25519 files named <role>-<keyid[:8]>.key,
// mode 0600, in directories of mode 0700 holding a .gitignore of "*". The
// root and targets keys are offline: the operator brings them (several
// directories, for keys on separate media) to init, publish and
// rotate-root. A key file is written whole or not at all (a temporary
// file, linked to its name); one that cannot be read or parsed is skipped
// and reported, and fails signing only when the role's threshold needs it.
// The snapshot and timestamp keys are online, by default in
// DIR/keys, which the handler never serves: sumd serve re-signs with them.
// The handler opens files below metadata/ and targets/ only, each confined
// to its directory, and readers of the repository (the handler, the
// writers' verification) take regular files only: a symbolic link or a
// FIFO planted there is refused (500, or a problem), never followed or
// waited on — even a link that stays inside metadata/ (a ConfigMap's
// ..data/ layout), and the client's cached root.json (ignored, with a
// warning). The handler holds metadata/ and targets/ open (os.Root), so a
// directory replaced while it serves (a restore) is seen after a restart
// only. docs/keys.md tells operators both.
//
// # Who writes what
//
// Versioned files and targets are written once, never replaced (clients
// and caches may hold them), except a hashed target found not to hold its
// content, which the next publication rewrites; timestamp.json is replaced atomically
// (rename), last, so a client never sees a timestamp naming a file not yet
// written. Offline commands write root and targets; SignOnline writes
// snapshot and timestamp whenever the newest valid targets version is not
// the one the snapshot lists, a role's signature no longer verifies under
// the newest root, or the policy in online.go says they are getting old.
//
// Nothing read back from disk is trusted before it is verified: the root
// chain is walked from 1.root.json as a client walks it, a targets version
// is referenced only if the newest root's targets keys signed it, and the
// next snapshot and timestamp versions follow only metadata the newest
// root's online keys signed (online.go). File names raise no version.
package tuf
