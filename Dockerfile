# The AisOpsFlow image: every process of the stack; docker-compose.yml picks one per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY . /src
RUN pip install /src \
    && rm -rf /src \
    && groupadd --system --gid 10001 aisopsflow \
    && useradd --system --uid 10001 --gid aisopsflow --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin aisopsflow \
    && mkdir -p /data /workflows \
    && chown aisopsflow:aisopsflow /data

# A new named volume on /data starts as a copy of this directory, owned by the app user.
USER aisopsflow
WORKDIR /data
ENV AISOPSFLOW_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080 8091 8092 8093 8094 8095

ENTRYPOINT ["aisopsflow"]
CMD ["--help"]
