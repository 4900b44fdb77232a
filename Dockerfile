# One image for every process of the edge gateway: the four services, the simulators, edgectl, the Alembic
# migrations and the broker's password-file tool. docker-compose.yml picks the process with `command:`.
#
#   docker build -t feedmill-edge-gateway .
#   docker run --rm feedmill-edge-gateway edgectl --help
#
# No secret is baked in: passwords arrive at run time as files (compose `secrets:` + *_FILE variables).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid/gid: secret files bind-mounted by compose keep their host ownership and mode, so
# the host side must be able to grant read access to a known id (see secrets/README.md).
# Not --system: system accounts must lie below 1000 (useradd warns about 10001), and a system range uid could
# collide with a package's account on the host.
RUN groupadd --gid 10001 edge \
 && useradd --uid 10001 --gid edge --home-dir /app --no-create-home --shell /usr/sbin/nologin edge

WORKDIR /app

# Dependencies first, in their own layer: a code change does not re-download them. The stub packages let
# pip resolve the project's metadata without its code; the real code replaces them below.
# requirements.lock pins every library to the versions ./scripts/test installs (two builds on different days
# get the same libraries).
COPY pyproject.toml requirements.lock ./
RUN mkdir -p shared services simulators edgectl \
 && pip install -c requirements.lock . \
 && pip uninstall -y feedmill-edge-gateway

COPY shared ./shared
COPY services ./services
COPY simulators ./simulators
COPY edgectl ./edgectl
# Not a wheel build: `alembic upgrade head` runs from /app with the repo's alembic.ini and migrations/.
RUN pip install --no-deps . && rm -rf build ./*.egg-info
COPY alembic.ini ./
COPY migrations ./migrations
# The broker's password-file tool (run as the one-shot `mqtt-passwd` service) and the ACL it installs.
COPY mosquitto/make_passwd.py mosquitto/acl ./mosquitto/
# The gateway's state directory, owned by the app user so a new named volume mounted here inherits that.
RUN mkdir -p /var/lib/plc_gateway && chown edge:edge /var/lib/plc_gateway

USER edge:edge

# Each service serves /healthz on HEALTH_PORT (compose sets it); python's urllib, since slim has no curl.
# HEALTH_PORT unset or 0 (simulators, one-shot jobs): nothing to check, report healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; p = int(os.environ.get('HEALTH_PORT') or 0); p and urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]

# SIGTERM (docker's default stop signal) triggers each service's graceful shutdown.
CMD ["edgectl", "--help"]
