#!/usr/bin/env bash
# Run a benchmark in its own environment, on a machine with only Python and pip:
#
#   bash bench/run.sh                 # the logging benchmark, full run (~4 minutes on 2 cores)
#   bash bench/run.sh --quick         # its smoke run (~30 s)
#   bash bench/run.sh --only pa,structlog --n 100000
#   bash bench/run.sh logging ...     # the same, named explicitly
#   bash bench/run.sh profiler        # profiler overhead + metric updates (~2 minutes)
#   bash bench/run.sh profiler --quick --only pa,phanos
#
# Creates bench/.venv (PYTHON picks the interpreter, default python3), installs the project
# (editable) and bench/requirements.txt into it, then runs bench/bench_logging.py (or
# bench/bench_profiler.py when the first argument is "profiler") with the remaining arguments.
# The install is skipped when neither pyproject.toml nor requirements.txt changed since the
# last one.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$bench_dir")"
venv="$bench_dir/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
stamp="$venv/.bench-installed"
wanted="$(cat "$repo_dir/pyproject.toml" "$bench_dir/requirements.txt" | "$venv/bin/python" -c \
    'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -e "$repo_dir" -r "$bench_dir/requirements.txt"
    echo "$wanted" > "$stamp"
fi

harness="bench_logging.py"
case "${1:-}" in
    logging) shift ;;
    profiler) harness="bench_profiler.py"; shift ;;
esac
exec "$venv/bin/python" "$bench_dir/$harness" "$@"
