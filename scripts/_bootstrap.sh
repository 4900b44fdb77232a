# Shared setup for ./scripts/test and ./scripts/demo: Debian packages (when root and missing),
# a virtualenv in .venv, and the project installed into it. Source this file; it sets VENV and PY.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

need_apt=()
for pair in "$@"; do
  bin="${pair%%:*}"; pkg="${pair##*:}"
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ] && ! ls /usr/lib/postgresql/*/bin/"$bin" >/dev/null 2>&1; then
    need_apt+=("$pkg")
  fi
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "warning: missing ${need_apt[*]} and cannot apt-get install (not root); some steps may fail" >&2
  fi
fi

if [ ! -x "$PY" ]; then
  echo "==> creating virtualenv $VENV"
  python3 -m venv "$VENV" || { echo "python3-venv missing"; exit 1; }
fi
# The same pins as the image (requirements.lock): the tests run the libraries the containers run.
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "==> installing the project and its dependencies into .venv"
  "$PY" -m pip install -q --upgrade pip >/dev/null
  "$PY" -m pip install -q -c "$ROOT/requirements.lock" -e "$ROOT[test]"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH:/usr/sbin"
for d in /usr/lib/postgresql/*/bin; do [ -d "$d" ] && export PATH="$PATH:$d"; done
