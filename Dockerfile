FROM python:3.11-slim

RUN useradd --system --create-home --home-dir /home/bridge bridge \
    && mkdir -p /data /config && chown bridge:bridge /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER bridge
VOLUME ["/config", "/data"]
ENTRYPOINT ["muc-bridge"]
CMD ["run", "--config", "/config/config.yaml"]
