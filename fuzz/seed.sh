#!/bin/sh
# Seed the manifest_parse corpus with the repository's manifests (the corpus itself is not
# committed: fuzz/corpus is in .gitignore). Run from anywhere; safe to run again.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
corpus="$root/fuzz/corpus/manifest_parse"
mkdir -p "$corpus"
for dir in manifests tests/manifests src/cli/templates examples; do
    [ -d "$root/$dir" ] || continue
    find "$root/$dir" -name '*.toml' -type f | while read -r file; do
        # Name seeds after their path so reruns overwrite rather than duplicate.
        name=$(printf '%s' "${file#"$root"/}" | tr '/' '_')
        cp "$file" "$corpus/seed_$name"
    done
done
echo "$(ls "$corpus" | wc -l) files in $corpus"
