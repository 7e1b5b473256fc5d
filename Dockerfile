# Dijk container image: docker build -t dijk .
# Runs as an unprivileged user, works with a read-only root filesystem (mount writable
# /var/lib/dijk for the audit database and keys, and tmpfs on /tmp and /var/cache/dijk),
# and answers HEALTHCHECK on the admin listener's /healthz.

# ---- build: a virtual environment with Dijk and its pinned dependencies ------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/dijk \
    && /opt/dijk/bin/pip install --no-compile . \
    && /opt/dijk/bin/python -m compileall -q /opt/dijk/lib

# ---- runtime: the environment, an entrypoint, a user; no compiler, no pip cache ----------
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 dijk \
    && useradd --system --uid 10001 --gid dijk --home-dir /var/lib/dijk \
        --shell /usr/sbin/nologin dijk \
    && mkdir -p /var/lib/dijk /var/cache/dijk /etc/dijk \
    && chown dijk:dijk /var/lib/dijk /var/cache/dijk
COPY --from=build /opt/dijk /opt/dijk
COPY deploy/docker/entrypoint.sh /usr/local/bin/dijk-entrypoint
ENV PATH=/opt/dijk/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DIJK_CACHE_DIR=/var/cache/dijk \
    DIJK_LISTEN__ADDRESS=0.0.0.0 \
    DIJK_ADMIN__ADDRESS=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/dijk
VOLUME ["/var/lib/dijk"]
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["dijk-entrypoint", "healthcheck"]
ENTRYPOINT ["dijk-entrypoint"]
CMD ["serve", "--config", "/etc/dijk/dijk.yaml"]
