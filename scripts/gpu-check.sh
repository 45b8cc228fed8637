#!/usr/bin/env bash
# One command for a machine with a GPU: builds, prints `spin info`, runs every `spin bench`
# configuration as JSON and a short `spin hydrogen`, and writes everything into one Markdown file
# to paste into docs/results/ (with the device's name, which `spin info` and every bench line carry).
#
#   scripts/gpu-check.sh [OUT.md]
#
# Environment (all optional):
#   BENCH_SECONDS     seconds timed per bench configuration (default 5)
#   BENCH_CONFIG      only bench configurations whose name contains this (default: all)
#   HYDROGEN_SECONDS  training seconds of the hydrogen run (default 120)
#   HYDROGEN_ARGS     extra flags for it (e.g. "--readout-refit false --eval-samples 65536")
#   SPIN_FLAGS        global flags for every command (e.g. "--adapter nvidia")
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-gpu-check.md}"
bench_seconds="${BENCH_SECONDS:-5}"
hydrogen_seconds="${HYDROGEN_SECONDS:-120}"
read -r -a global <<<"${SPIN_FLAGS:-}"
read -r -a hydrogen_args <<<"${HYDROGEN_ARGS:-}"
bench_filter=()
if [ -n "${BENCH_CONFIG:-}" ]; then
    bench_filter=(--config "$BENCH_CONFIG")
fi

cargo build --release
spin=target/release/spin
runs="$(mktemp -d)"
trap 'rm -rf "$runs"' EXIT

{
    echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')"
    echo
    echo '## spin info'
    echo
    echo '```'
    "$spin" "${global[@]}" info
    echo '```'
    echo
    echo "## spin bench --json --seconds $bench_seconds ${bench_filter[*]}"
    echo
    echo '```json'
    "$spin" "${global[@]}" --quiet bench --json --seconds "$bench_seconds" "${bench_filter[@]}"
    echo '```'
    echo
    echo "## spin hydrogen --time-limit $hydrogen_seconds ${hydrogen_args[*]}"
    echo
    echo '```'
    "$spin" "${global[@]}" --quiet hydrogen --time-limit "$hydrogen_seconds" \
        "${hydrogen_args[@]}" --out "$runs/hydrogen" 2>&1 | tail -n 25
    echo '```'
} >"$out"
echo "wrote $out"
