#!/usr/bin/env bash
# bench/hot-symbols.sh: rewrites bench/hot-symbols.txt, the functions `sandbox up` runs,
# hottest first, which `cargo release-static` has lld place together at the start of the
# binary (--symbol-ordering-file). A launch then faults in those pages only, instead of most of
# the binary: the peak RSS halves and about 70 page faults go.
#
# The list comes from a cpu-clock profile (every 10 µs; a VM has no hardware counters) of the
# benchmark's manifests as root and of a host-root manifest rootless, 500 rounds: a function
# running for a few nanoseconds a launch is still caught. Run it as root after changes to the
# launch path; names that no longer exist are ignored by the link, so a stale list only costs
# memory, never correctness.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-500}"
if [ "$(id -u)" != 0 ]; then
  echo "bench/hot-symbols.sh: run it as root (the benchmark's manifests need root)" >&2
  exit 1
fi
command -v perf >/dev/null && command -v musl-gcc >/dev/null || {
  apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf musl-tools
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The same build as release-static, without an order: what is hot must not depend on where the
# last list put it.
target=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
cargo rustc --release --locked --quiet --bin sandbox --target "$target" -- -C linker=rust-lld
cp "${CARGO_TARGET_DIR:-$PWD/target}/$target/release/sandbox" "$work/sandbox"
chmod 755 "$work" "$work/sandbox"
bench/prepare-root.sh "$PWD/bench/results/root"
mkdir -m 1777 "$work/state"

cat >"$work/rounds.sh" <<LOOP
for round in \$(seq $ROUNDS); do
  for manifest in full nonet limits security; do
    "$work/sandbox" up --trust "$PWD/bench/manifests/\$manifest.toml" >/dev/null
  done
  setpriv --reuid=65534 --regid=65534 --clear-groups \
    env SANDBOX_STATE_DIR="$work/state" "$work/sandbox" up --trust "$PWD/bench/manifests/host.toml"
done
LOOP
perf record -q -o "$work/perf.data" -e cpu-clock -c 10000 --all-user -- bash "$work/rounds.sh"
perf report -i "$work/perf.data" --comm sandbox --dso "$work/sandbox" --no-demangle \
  --sort sym --stdio 2>/dev/null | awk '/\[\.\]/ { print $3 }' >bench/hot-symbols.txt
echo "bench/hot-symbols.txt: $(wc -l <bench/hot-symbols.txt) functions" >&2
