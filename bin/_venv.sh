# Sourced by the bin/ scripts: creates .venv and installs a requirements file into it,
# again only when the file changed since the last install.
ensure_venv() {
  local requirements="$1"
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  local stamp=".venv/.installed-$(basename "$requirements")"
  if [ ! -f "$stamp" ] || [ -n "$(find requirements*.txt -newer "$stamp" 2>/dev/null)" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    touch "$stamp"
    # Files it includes with "-r" are installed too (requirements-test.txt includes requirements.txt).
    local included
    for included in $(sed -n 's/^-r[[:space:]]*//p' "$requirements"); do
      touch ".venv/.installed-$(basename "$included")"
    done
  fi
}
