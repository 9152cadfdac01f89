# syntax=docker/dockerfile:1
# Build: dependencies are compiled in their own layer, so a code change rebuilds only itbot.
# The production build: the bot alone, without the `sandbox` feature, so no fake is in it.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Benchmarks are declared in Cargo.toml, so their files must exist for cargo to read it.
COPY benches ./benches
# The workspace's other members (test tooling) must resolve, not build: manifests and
# placeholder sources are enough.
COPY crates/itbot-fakes/Cargo.toml ./crates/itbot-fakes/
# The classifier is a dependency of the bot: its whole (small) crate.
COPY crates/itbot-classifier ./crates/itbot-classifier
COPY crates/itbot-loadgen/Cargo.toml ./crates/itbot-loadgen/
RUN mkdir -p src crates/itbot-fakes/src crates/itbot-loadgen/src \
    && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && touch crates/itbot-fakes/src/lib.rs crates/itbot-loadgen/src/lib.rs \
    && echo 'fn main() {}' > crates/itbot-loadgen/src/main.rs \
    && cargo build --release --locked -p itbot --no-default-features \
    && rm -rf src
COPY src ./src
COPY config ./config
# Data compiled into the binary: the labelled sets the triage classifiers train on
# (data/triage/, named in src/triage.rs; no held-out set is embedded) and the gitleaks secret rules.
COPY data ./data
# Make sure cargo sees the real sources as newer than the placeholder build.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked -p itbot --no-default-features

# Run: a small image with CA certificates, the binary and config/, as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app itbot
WORKDIR /app
COPY --from=build /src/target/release/itbot /app/itbot
COPY config ./config
USER itbot
ENV PORT=8080 LOG_FORMAT=json RUST_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD curl -fsS "http://127.0.0.1:${PORT}/healthz" || exit 1
ENTRYPOINT ["/app/itbot"]
CMD ["run"]
