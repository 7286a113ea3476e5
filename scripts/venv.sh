# Sourced by run.sh and test.sh: make sure .venv exists and holds the pinned requirements.
# Reinstalls only when a requirements file changed. Falls back to the current Python
# when it cannot make a virtualenv (e.g. a system without the venv module).

ensure_python() {
  local requirements="$1"
  local base="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ] && ! "$base" -m venv .venv >/dev/null 2>&1; then
    echo "Could not create .venv; installing into $("$base" -c 'import sys; print(sys.executable)') instead." >&2
    rm -rf .venv
  fi
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="$base"; fi
  local stamp_file=".venv/.requirements-$(basename "$requirements").sha256"
  local stamp
  stamp=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  if [ "$PY" != ".venv/bin/python" ] || [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ]; then
    echo "Installing $requirements ..." >&2
    "$PY" -m pip install --disable-pip-version-check -q -r "$requirements"
    [ "$PY" = ".venv/bin/python" ] && echo "$stamp" > "$stamp_file"
  fi
  export PY
}
