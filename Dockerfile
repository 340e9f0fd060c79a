# syntax=docker/dockerfile:1
#
# Switchboard server image.
#   docker build -t switchboard .
#   docker run -p 8080:8080 -v switchboard-data:/data switchboard
# Configuration: /etc/switchboard/default.toml (the demo catalog; mount your
# own over it or point SWITCHBOARD_CONFIG elsewhere), then SWITCHBOARD_*
# variables, then flags (docs/configuration.md). SIGTERM (docker stop) is a
# graceful shutdown: clients are told to reconnect, writes flushed, exit 0.

# --- build ------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# The whole workspace (the load generator is a member); .dockerignore keeps
# target/ and data out of the context.
COPY . .
RUN cargo build --release --bin switchboard --bin switchboard-cli \
    && strip target/release/switchboard target/release/switchboard-cli

# --- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates for outbound TLS, curl for the HEALTHCHECK probe.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid switchboard --home-dir /data \
       --no-create-home --shell /usr/sbin/nologin switchboard \
    && mkdir -p /data /etc/switchboard \
    && chown switchboard:switchboard /data
COPY --from=builder /src/target/release/switchboard /usr/local/bin/switchboard
COPY --from=builder /src/target/release/switchboard-cli /usr/local/bin/switchboard-cli
COPY config/default.toml /etc/switchboard/default.toml

ENV SWITCHBOARD_CONFIG=/etc/switchboard/default.toml \
    SWITCHBOARD_LISTEN=0.0.0.0:8080 \
    SWITCHBOARD_DATA_DIR=/data

# sled's files: keep them across container restarts and upgrades.
VOLUME ["/data"]
# HTTP (REST, /metrics, /healthz, /readyz) and the WebSocket (/ws).
EXPOSE 8080
USER switchboard:switchboard
WORKDIR /data

# Alive = the process answers on its port (readiness is /readyz). If you
# change SWITCHBOARD_LISTEN's port, override this check too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz >/dev/null || exit 1

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
