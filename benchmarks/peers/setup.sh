#!/usr/bin/env bash
# Install what the peer benchmark needs, idempotently:
#   - Debian's redis-server (apt-get), if `redis-server` is not on PATH;
#   - <root>/.venv-peers      huey celery dramatiq rq taskiq saq (+ redis-py 8, hiredis, psutil);
#   - <root>/.venv-peers-arq  arq 0.28 with a redis-py < 6 (arq 0.28 does not accept redis-py 6+);
#   - <root>/.venv-peers-procrastinate  procrastinate 3.10 (psycopg 3), the PostgreSQL peer, in a
#     venv of its own so that adding it did not change (and re-install) .venv-peers. Its broker
#     is the tests' private PostgreSQL cluster, whose binaries `make bench-peers` installs
#     (scripts/install-postgres) and which run.py starts with the project's .venv.
# A venv whose stamp file holds the same requirement list is left alone. The exact installed
# versions are written to benchmarks/peers/freeze-peers*.txt.
#   benchmarks/peers/setup.sh           (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-python3}

if ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup.sh: $py is $("$py" -V 2>&1), want Python 3.11" >&2
  exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server
fi

# venv, freeze file, requirements (pip arguments). celery/kombu need their [redis] extra: kombu's
# Redis transport imports `packaging`, which only that extra installs.
make_venv() {
  local venv=$1 freeze=$2
  shift 2
  local stamp="$venv/.stamp-peers" want="$*"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup.sh: $venv is up to date"
  else
    echo "setup.sh: installing $venv: $want"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    "$venv/bin/python" -m pip check
    printf '%s' "$want" >"$stamp"
  fi
  {
    echo "# $(basename "$venv"): $("$venv/bin/python" -V 2>&1); written by setup.sh"
    "$venv/bin/python" -m pip freeze --disable-pip-version-check
  } >"$freeze.tmp"
  mv "$freeze.tmp" "$freeze"
}

make_venv "$root/.venv-peers" "$here/freeze-peers.txt" \
  huey==3.5.4 "celery[redis]==5.7.0" "kombu[redis]==5.7.0" "dramatiq[redis]==2.2.1" rq==3.0.0 \
  taskiq==0.13.0 taskiq-redis==1.2.4 saq==0.26.4 redis==8.1.0 hiredis psutil

make_venv "$root/.venv-peers-arq" "$here/freeze-peers-arq.txt" \
  arq==0.28.0 "redis<6" hiredis psutil

make_venv "$root/.venv-peers-procrastinate" "$here/freeze-peers-procrastinate.txt" \
  "procrastinate[psycopg]==3.10.0" "psycopg[binary]" redis==8.1.0 hiredis psutil

echo "setup.sh: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), venvs ready"
