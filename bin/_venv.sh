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

# Compiles the translations (locale/*/LC_MESSAGES/*.po) into the .mo files Django reads,
# which are built rather than committed. Installs Debian's gettext (msgfmt) when a .po is
# newer than its .mo and msgfmt is missing; does nothing when every .mo is up to date.
# django-admin runs without the project's settings, so no key or database is touched.
ensure_messages() {
  local po outdated=0
  for po in locale/*/LC_MESSAGES/*.po; do
    if [ -f "$po" ] && ! [ "${po%.po}.mo" -nt "$po" ]; then outdated=1; fi
  done
  if [ "$outdated" = 0 ]; then return 0; fi
  if ! command -v msgfmt >/dev/null 2>&1; then
    echo "Installing Debian's gettext to compile the translations..."
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gettext >/dev/null
  fi
  env -u DJANGO_SETTINGS_MODULE .venv/bin/django-admin compilemessages --ignore='.*' --ignore=instance --verbosity 0
}
