#!/usr/bin/env bash
# Times the README's two commands exactly as written, from a fresh clone in a fresh venv: each
# `&&`-separated part under /usr/bin/time (wall, user+sys CPU of it and its children), then
# ninja's per-target log (.ninja_log: start/end ms of every compile and the link).
#   bash bench/build_time.sh [REPO] [WORKDIR]    (REPO: a path or URL git can clone; default .)
# LOCK: a command prefix each step runs under (e.g. LOCK="flock /tmp/cpu.lock" on a shared box).
# SKIP_TESTS=1 stops the second command before its `pytest -q`.
set -euo pipefail
repo=$(cd "${1:-.}" && pwd)
work=${2:-$(mktemp -d)}
readme_commands() { sed -n '/^```bash$/,/^```$/p' "$repo/README.md" | sed -n '2,3p'; }
rm -rf "$work/clone" "$work/venv"
git clone -q "$repo" "$work/clone"
python3 -m venv "$work/venv"
cd "$work/clone"
n=0
while IFS= read -r line; do
  n=$((n + 1))
  while IFS= read -r part; do
    part=$(echo "$part" | sed 's/^ *//; s/ *$//')
    [[ -n ${SKIP_TESTS:-} && $part == pytest* ]] && continue
    ${LOCK:-} /usr/bin/time -f "command $n: %e s wall, %U+%S s CPU: $part" \
      bash -c ". '$work/venv/bin/activate' && $part" > "$work/cmd$n.log" 2>&1 < /dev/null \
      || { tail -30 "$work/cmd$n.log"; exit 1; }
    tail -1 "$work/cmd$n.log"
  done < <(echo "$line" | sed 's/ && /\n/g')
  log=$(ls build/*/.ninja_log 2>/dev/null | head -1)
  if [[ -n $log ]]; then cp "$log" "$work/ninja_log.$n"; fi
done < <(readme_commands)
echo "ninja logs: $work/ninja_log.*  (summarise: python bench/ninja_summary.py $work/ninja_log.1)"
