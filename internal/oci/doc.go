// Package oci moves Go module versions through OCI registries: it publishes a
// version as an OCI artifact (Push), optionally signed the way `cosign sign
// --key` signs, and it walks registries for such artifacts, verifies their
// cosign signatures offline against configured public keys, hashes the
// module as the go command would and records it in the log (Syncer).
//
// The artifact format is sumd's own (docs/oci.md): an OCI image manifest of
// artifactType ArtifactType with the empty config, one layer holding the
// go.mod file and one holding the module zip, and the module path and
// version in the manifest annotations. Those annotations are what a
// signature covers, so they, not the repository or tag, say which module
// version an artifact is; an artifact whose repository or tag disagrees
// with them is refused all the same, so that a signed artifact cannot be
// replayed under another name.
//
// Two signature formats are accepted, both key-based and verified without a
// transparency log: cosign v2's "simple signing" signatures stored at the
// tag sha256-<hex>.sig (checked with the cosign library), and cosign v3's
// Sigstore bundles attached as OCI referrers (checked with sigstore-go).
//
// The order of a sync is the security argument: resolve a tag to a digest,
// fetch the manifest by that digest, verify a signature over that digest,
// and only then fetch the layers the same manifest names, checking each
// blob's digest while hashing it. Nothing is recorded from bytes that were
// not covered by a verified signature. The layers of an unsigned artifact
// are fetched only for a version the log already holds, and only to
// compare their hashes with its record: the recorded release whose key was
// since removed is not a re-tag. The sync state bounds that to one fetch
// per manifest (it remembers the verdict) and to none for a manifest
// naming the very layers the version was recorded from; it also bounds to
// one the fetches of a signed manifest's layers judged invalid or a
// conflict.
package oci
