#!/usr/bin/env bash
# Build virtform, then run every bench/*.bench.ts (observe, apply, process — the whole CLI process
# against libvirt's own cost, in its own namespace host —, cli — start-up and validate —,
# watch-incremental — the incremental watch step next to the tree of its --baseline-ref —, and the
# rpc/watch benches), each as `npx tsx bench/<name>.bench.ts --out bench/results/<name>.md`, and write
# bench/results/README.md: an index with the machine's details and each bench's status and time.
#
#   bash bench/run-all.sh            # all benches (~10 min on a 2-core host)
#   bash bench/run-all.sh observe    # only the named ones
#
# Needs root and a running libvirtd (make setup). Benchmarks create only vftest-bench-* objects and
# remove them. Logs go to ${BENCH_LOGS:-/tmp/virtform-bench-logs}/<name>.log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RESULTS=bench/results
LOGS="${BENCH_LOGS:-/tmp/virtform-bench-logs}"
mkdir -p "$RESULTS" "$LOGS"

echo "== building"
npm run -s build || { echo "build failed" >&2; exit 1; }

benches=()
if [ $# -gt 0 ]; then
  for n in "$@"; do benches+=("bench/$n.bench.ts"); done
else
  for f in bench/*.bench.ts; do benches+=("$f"); done
fi

rows=""
failed=0
total_start=$(date +%s)
for f in "${benches[@]}"; do
  name=$(basename "$f" .bench.ts)
  if [ ! -f "$f" ]; then echo "no such bench: $f" >&2; failed=1; continue; fi
  echo "== $name"
  start=$(date +%s)
  if npx tsx "$f" --out "$RESULTS/$name.md" >"$LOGS/$name.log" 2>&1; then status=ok; else status="FAILED (see $LOGS/$name.log)"; failed=1; fi
  secs=$(( $(date +%s) - start ))
  echo "   $status in ${secs}s"
  rows+="| [$name]($name.md) | $status | ${secs} |"$'\n'
done
total=$(( $(date +%s) - total_start ))

cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
cores=$(nproc)
mem=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1024/1024}' /proc/meminfo)
libvirt=$(virsh -c qemu:///system version 2>/dev/null | awk -F': ' '/Running against daemon|Using library/{print $2}' | head -1)
qemu=$(virsh -c qemu:///system version 2>/dev/null | awk -F': ' '/Running hypervisor/{print $2}')
{
  echo "# virtform benchmark results"
  echo
  echo "Produced by \`bash bench/run-all.sh\` on $(date -u +%Y-%m-%dT%H:%M:%SZ) in ${total}s."
  echo "Numbers are from one run on a shared, noisy machine: compare ratios within a table, not absolute times across runs."
  echo
  echo "- cpu: ${cpu:-unknown}"
  echo "- cores: $cores"
  echo "- memory: $mem"
  echo "- node: $(node -v)"
  echo "- libvirt: ${libvirt:-unknown}; hypervisor: ${qemu:-unknown}"
  echo "- kernel: $(uname -r)"
  echo "- git: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo
  echo "| bench | status | seconds |"
  echo "| --- | --- | --- |"
  printf '%s' "$rows"
  if [ -f "$RESULTS/faults.md" ]; then
    echo
    echo "Also here: [faults.md](faults.md), written by the fault suite (\`npx vitest run -c vitest.faults.config.ts\`), not by this script."
  fi
} >"$RESULTS/README.md"
echo "== wrote $RESULTS/README.md (${total}s)"
exit $failed
