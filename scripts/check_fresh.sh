#!/usr/bin/env bash
# What a new user (and CI on a new machine) gets: a fresh clone of the committed HEAD, then exactly
# .ci/run (a venv of its own in the clone, set-up, lint, the README's test command), all thrown away
# afterwards. Fails when the run fails, or
# when any test was skipped for a reason that is not absent hardware (a missing package included).
#   bash scripts/check_fresh.sh [REF]     # default: HEAD; the log is kept in /tmp/check_fresh.log
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
ref=${1:-HEAD}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=/tmp/check_fresh.log
git clone -q "$repo" "$work/clone"
git -C "$work/clone" checkout -q "$(git -C "$repo" rev-parse "$ref")"
cd "$work/clone"
start=$SECONDS
set +e
CI=true bash .ci/run >"$log" 2>&1
rc=$?
set -e
echo "check_fresh: .ci/run exited $rc after $((SECONDS - start)) s in a fresh venv ($("$work/clone/.ci-venv/bin/python3" --version 2>&1 || echo "no venv"))"
grep -E "^set-up: |^time per tier: " "$log" || true
tail -n 1 "$log"
# -ra lists every skip as "SKIPPED [n] file:line: reason"; only absent hardware may be a reason.
bad=$(grep -E "^SKIPPED" "$log" | grep -viE "CUDA|GPU|AVX|instruction set|accelerator" || true)
if [ -n "$bad" ]; then
  echo "check_fresh: skips that do not name absent hardware:"; echo "$bad"; exit 1
fi
exit "$rc"
