#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module for FUZZTIME each (make fuzz).
# Packages are found by their Fuzz functions.
#
# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" and no failing input, a race in the coordinator at the
# end of -fuzztime (golang/go#75804, fixed in Go 1.27). Such a run is
# reported and the target is run once more; a failure that writes an input
# to testdata/fuzz, or fails twice, fails make fuzz.
#
# The fuzzer shrinks every new interesting input for -fuzzminimizetime
# (60 s by default), trying a number of cuts that grows with the square of
# the input's length, and reports no execs meanwhile: in packages whose test
# binaries carry many coverage counters (internal/mirror: about 80,000) a
# 60 s run spent most of its time shrinking inputs of a few hundred bytes.
# FUZZMINIMIZE (default 5s) bounds it; a failing input is still written,
# shrunk less.
set -euo pipefail
go=${GO:-go}
fuzztime=${FUZZTIME:-60s}
minimize=${FUZZMINIMIZE:-5s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for p in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	targets=$("$go" test -list '^Fuzz' "$p") # set -e stops here if the package does not build
	for f in $(grep '^Fuzz' <<<"$targets"); do
		for try in 1 2; do
			echo "== $p $f ($fuzztime)"
			if "$go" test -run '^$' -fuzz "^$f\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$p" 2>&1 | tee "$out"; then
				break
			fi
			if [ "$try" = 1 ] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"; then
				echo "== $f: the fuzzing coordinator's deadline race (golang/go#75804), no failing input: running it once more"
				continue
			fi
			exit 1
		done
	done
done
