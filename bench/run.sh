#!/usr/bin/env bash
# Run a benchmark in its own environment, on a machine with only Python and pip:
#
#   bash bench/run.sh                 # the logging benchmark, full run (~4 minutes on 2 cores)
#   bash bench/run.sh --quick         # its smoke run (~30 s)
#   bash bench/run.sh --only pa,structlog --n 100000
#   bash bench/run.sh logging ...     # the same, named explicitly
#   bash bench/run.sh profiler        # profiler overhead + metric updates (~2 minutes)
#   bash bench/run.sh profiler --quick --only pa,phanos
#   bash bench/run.sh rabbitmq        # RabbitMQ fan-out vs phanos' AsyncImpProfHandler (~1 minute;
#                                     # needs the broker on 127.0.0.1:5672)
#   bash bench/run.sh sql             # SQLHandler rows/s per batch size, PostgreSQL + SQLite (~1 min)
#   bash bench/run.sh series          # numeric series vs one call per point (~3 minutes)
#   bash bench/run.sh otlp            # OTLP/HTTP: encode cost and delivery vs the OTel SDK (~2 min)
#
# Creates bench/.venv (PYTHON picks the interpreter, default python3), installs the project
# (editable) and bench/requirements.txt into it, then runs bench/bench_logging.py (or
# bench/bench_profiler.py when the first argument is "profiler", bench/bench_series.py for
# "series", bench/bench_rabbitmq.py for "rabbitmq") with the remaining arguments.
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
    rabbitmq) harness="bench_rabbitmq.py"; shift ;;
    sql) harness="bench_sql.py"; shift  # needs the [sql] extra (SQLAlchemy, asyncpg, aiosqlite)
        "$venv/bin/python" -c 'import sqlalchemy, asyncpg, aiosqlite' 2>/dev/null ||
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
                -e "$repo_dir[sql]" ;;
    series) harness="bench_series.py"; shift ;;
    otlp) harness="bench_otlp.py"; shift ;;
esac
exec "$venv/bin/python" "$bench_dir/$harness" "$@"
