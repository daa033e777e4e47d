# mailadmin in a container: python:3.11-slim, a non-root user, and the same bin/serve-production
# that CI starts (migrations, collectstatic, gunicorn). compose.yaml adds PostgreSQL.
#   docker build -t mailadmin .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MAILADMIN_INSTANCE_DIR=/var/lib/mailadmin \
    MAILADMIN_BIND=0.0.0.0:8000 \
    GUNICORN_CMD_ARGS="--worker-tmp-dir /dev/shm"

RUN useradd --system --user-group --uid 10001 --home-dir /app --shell /usr/sbin/nologin mailadmin \
    && install -d -o mailadmin -g mailadmin -m 0700 /var/lib/mailadmin
# gettext's msgfmt compiles the translations below; bin/serve-production finds them up to date.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gettext >/dev/null \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Requirements first, so that a code change does not reinstall them.
COPY requirements.txt ./
COPY bin/_venv.sh bin/
RUN bash -c 'source bin/_venv.sh && ensure_venv requirements.txt'
COPY . .
# A no-op unless the copy made a requirements file newer than the install; then the
# stamp is refreshed here, since the mailadmin user cannot install at start-up. The
# translations are compiled here for the same reason.
RUN bash -c 'source bin/_venv.sh && ensure_venv requirements.txt && ensure_messages'

USER mailadmin
VOLUME ["/var/lib/mailadmin"]
EXPOSE 8000
CMD ["bin/serve-production"]
