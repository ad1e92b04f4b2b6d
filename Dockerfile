FROM python:3.11-slim

# A fixed uid/gid (10001), so that a host directory bind-mounted on /data can be given to it.
RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --home-dir /data --no-create-home bridge \
    && mkdir -p /data /config && chown bridge:bridge /data && chmod 0700 /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip install --no-cache-dir '.[postgres]' && rm -rf /root/.cache

USER bridge
# The data directory is the working directory: the default store (sqlite://muc-bridge.db)
# and SILC key_dir (silc-keys) are relative paths, so they land here, writable by the user.
WORKDIR /data
VOLUME ["/data"]
# Asks the bridge's /health (ready: every network connected, every linked room joined) at the
# config's metrics.listen, e.g. `metrics: {listen: "127.0.0.1:9102"}`; a config without
# metrics has nothing to ask, and the check passes saying so.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["muc-bridge", "health", "--config", "/config/config.yaml"]
ENTRYPOINT ["muc-bridge"]
CMD ["run", "--config", "/config/config.yaml"]
