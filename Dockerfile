# Builds weir and the reference plugins, then ships the binary and the
# plugins in a slim image. Used by docker-compose.yml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
RUN scripts/build-plugins.sh && cargo build --release -p weir

FROM debian:bookworm-slim
# librdkafka is linked statically but uses the system's OpenSSL for TLS.
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --create-home weir
WORKDIR /app
COPY --from=build /src/target/release/weir /usr/local/bin/weir
COPY --from=build /src/plugins/dist /app/plugins/dist
COPY examples /app/examples
# Checkpoint files of at-least-once pipelines (a volume in docker-compose.yml).
RUN mkdir -p /app/examples/.weir && chown weir /app/examples/.weir
USER weir
ENTRYPOINT ["weir"]
