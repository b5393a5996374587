#!/usr/bin/env bash
# Mutation testing of the Rust core with cargo-mutants (`make mutants-rust`). What is mutated, the profile, the
# timeout and the survivors accepted as equivalent are in .cargo/mutants.toml; the last run is in docs/testing.md.
#
# Each file's mutants run only the unit tests of the modules that use it: validators.rs the pii:: tests, ratelimit.rs
# the ratelimit:: tests (without loading the token vocabularies), tokens.rs the tokens:: tests. Two lanes run side
# by side, one a core: the validators; the rate limiter then tokens. Each lane has its own target directory, and
# each cargo-mutants run its own copy of the tree. Two runs at once never share a target directory: cargo would
# take one run's mutated build as up to date for the other's tree (the copies' sources are newer than the build), so
# never point a normal build at target/mutants/* either.
#
# Exit status: 0 when no mutant is missed (a timeout counts as caught: the tests did not pass); 2 when one is; any
# other cargo-mutants failure (4: the unmutated tree fails its tests) as cargo-mutants gives it.
set -uo pipefail
cd "$(dirname "$0")/.."

# Pinned, so that the counts in docs/testing.md compare run to run: another version mutates differently.
version=27.1.0
if [[ "$(cargo mutants --version 2>/dev/null)" != "cargo-mutants $version" ]]; then
  cargo install cargo-mutants --locked --version "$version" || exit 1
fi

# A failing proptest case kills the mutant: shrinking it to the smallest case (hundreds of reruns of unoptimized
# code) only runs the mutant into the timeout. Backtraces of the mutants' panics are not read either.
export PROPTEST_MAX_SHRINK_ITERS=0 RUST_BACKTRACE=0

out=target/mutants
mkdir -p "$out"

# A cold lane builds every dependency first: usearch's C and C++ and the vocabularies' build script are most of the
# unmutated baseline build, itself 6 of the 14 minutes of a cold run on two idle cores. Build them once, in one
# lane's directory, and copy it to the other before either starts. Cargo keys a registry crate's build by its
# source, profile and features, not by where the workspace is, so the tree copies cargo-mutants makes reuse them;
# the core crate built here from the worktree is rebuilt in each copy, whose sources are newer. A later run finds
# both directories warm and rebuilds only the core crate.
if [[ ! -d "$out/core" || ! -d "$out/pii" ]]; then
  rm -rf "$out/core" "$out/pii"
  CARGO_TARGET_DIR="$PWD/$out/core" cargo test --profile mutants --lib --no-run -q || exit 4
  cp -a "$out/core" "$out/pii"
fi

# run NAME LANE FILE TESTS: mutate rust/src/FILE, run the unit tests TESTS, in target directory LANE.
run() {
  local name=$1 lane=$2 file=$3 tests=$4
  CARGO_TARGET_DIR="$PWD/$out/$lane" cargo mutants --re "^rust/src/${file//./\\.}:" --output "$out/$name" -- -- "$tests" \
    > "$out/$name.log" 2>&1
  echo $? > "$out/$name.status"
}

start=$SECONDS
run pii pii pii/validators.rs pii:: &
lane=$!
run ratelimit core ratelimit.rs ratelimit::
run tokens core tokens.rs tokens::
wait "$lane"

status=0
for name in pii ratelimit tokens; do
  code=$(cat "$out/$name.status")
  # cargo-mutants reports timeouts (3) ahead of missed mutants (2): missed.txt decides below.
  ((code != 3 && code > status)) && status=$code
  echo "== $name: $(grep -E 'mutants tested in' "$out/$name.log" || echo "no summary, see $out/$name.log")"
  for kind in missed timeout; do
    sed "s/^/   $kind: /" "$out/$name/mutants.out/$kind.txt" 2>/dev/null
  done
  [[ -s "$out/$name/mutants.out/missed.txt" ]] && ((status < 2)) && status=2
done
echo "mutants-rust: $((SECONDS - start)) s, exit $status"
exit "$status"
