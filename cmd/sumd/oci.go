package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/term"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/oci"
)

// runOCI runs `sumd oci STEP`; push is the only step.
func runOCI(args []string, stdout, stderr io.Writer) error {
	if askHelp(args) {
		args = append([]string{"push"}, args...) // its only step
	}
	if len(args) == 0 || args[0] != "push" {
		return usageError(stepError("oci", args, "push"),
			"use: sumd oci push [flags] MODULE@VERSION DIR|ZIP HOST[:PORT][/PREFIX]; see docs/oci.md")
	}
	return ociPush(args[1:], stdout, stderr)
}

// ociPush publishes one module version as an OCI artifact, signed if a
// key is given.
func ociPush(args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := loadArgs(config.LoadOCIPush, args, stderr)
	if err != nil {
		return err
	}
	if len(rest) != 3 {
		return usageError(fmt.Errorf("want MODULE@VERSION, a directory or zip, and HOST[:PORT][/PREFIX]; got %d arguments", len(rest)),
			"e.g. sumd oci push -sign-key cosign.key example.com/m@v1.2.3 ./m registry.example.com/gomod")
	}
	m, err := parseModuleArg(rest[0])
	if err != nil {
		return err
	}
	dst, err := oci.ParseSources(rest[2:], nil)
	if err != nil {
		return usageError(err, "name the registry and prefix as for sumd sync -registry, e.g. registry.example.com/gomod")
	}
	// Checked before the password is read and the registry contacted, so
	// that a path no repository can be named after is not taken for a
	// registry or credentials problem.
	if _, err := oci.RepositoryName(dst[0].Prefix, m.Path); err != nil {
		return withHint(err, "nothing was pushed: this module path cannot be published in an OCI registry (docs/oci.md, Repository names)")
	}
	sv, err := signKey(cfg.SignKey, stderr)
	if err != nil {
		return err
	}
	mod, err := oci.OpenModule(m, rest[1])
	if err != nil {
		return withHint(err, "nothing was pushed; the go command would refuse this module too")
	}
	defer mod.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	p, err := oci.Push(ctx, dst[0], mod, oci.PushOptions{Remote: ociRemote(), Signer: sv})
	var published *oci.PublishedError
	switch {
	case errors.As(err, &published):
		return withHint(err, "a module version's content never changes once published (sumd sync reports any other as a conflict, "+
			"and go commands that fetched the first refuse it): publish a new version; if no sumd recorded this one yet, "+
			"delete the tag with your registry's tools first")
	case err != nil:
		return withHint(err, "check the registry address and your credentials in the Docker config file (docker login)")
	}
	fmt.Fprintf(stdout, "pushed %s as %s\n", m, p.Ref)
	fmt.Fprintf(stdout, "%s %s %s\n%s %s/go.mod %s\n", m.Path, m.Version, mod.Sums.Hash, m.Path, m.Version, mod.Sums.GoMod)
	if sv != nil {
		fmt.Fprintf(stdout, "signed: %s\n", p.Signature)
	} else {
		// Without --tlog-upload=false, cosign asks to publish the
		// signature in the public transparency log (docs/oci.md).
		fmt.Fprintf(stdout, "unsigned: sumd sync records it once it is signed, e.g. cosign sign --key cosign.key --tlog-upload=false --yes %s"+
			" (cosign v3: add --use-signing-config=false)\n", p.Ref)
	}
	return nil
}

// signKey loads the cosign private key at file, if any, with the password
// from $COSIGN_PASSWORD (set, even empty, it is used as cosign uses it) or
// typed at the terminal.
func signKey(file string, stderr io.Writer) (signature.SignerVerifier, error) {
	if file == "" {
		return nil, nil
	}
	const keyHint = "give the cosign.key written by cosign generate-key-pair and its password in COSIGN_PASSWORD"
	data, err := oci.ReadPrivateKey(file)
	if err != nil {
		return nil, withHint(err, keyHint) // before asking for a password
	}
	pw, ok := os.LookupEnv("COSIGN_PASSWORD")
	if !ok {
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return nil, usageError(errors.New("the password of -sign-key is needed"), "set COSIGN_PASSWORD, as for cosign")
		}
		fmt.Fprintf(stderr, "Enter password for private key %s: ", file)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("failed to read the password: %w", err)
		}
		pw = string(b)
	}
	sv, err := oci.ParsePrivateKey(data, []byte(pw))
	if err != nil {
		return nil, withHint(fmt.Errorf("%s: %w", file, err), keyHint)
	}
	return sv, nil
}

// ociRemote is how sumd reaches registries: credentials from the Docker
// config file, and a User-Agent naming sumd.
func ociRemote() oci.Remote {
	return oci.Remote{UserAgent: "sumd/" + version()}
}
