# syntax=docker/dockerfile:1
#
# authd container image: a release build on the Rust version Cargo.toml asks for
# (`rust-version`), run as a non-root user on a distroless runtime.
#
#   docker build -t authd .
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -e DATABASE_URL=postgres://authd:…@db.example.internal:5432/authd \
#     -e AUTHD_ISSUER=https://auth.example.com -e AUTHD_ALLOWED_ORIGINS=https://app.example.com \
#     authd
#
# No secret is baked in: DATABASE_URL, AUTHD_SMTP_URL, AUTHD_RESOURCE_SECRET,
# AUTHD_INTROSPECTION_SECRET and a signing-key file (AUTHD_SIGNING_KEY_FILE, optional) come from
# the environment, a secret store or a mounted file at run time. `deploy/check.sh` runs this
# build stage's commands on the host and the binary as the runtime user (there is no container
# engine on the machine authd is developed on).

# ---- build ------------------------------------------------------------------------------------
# DECIDE: keep this tag equal to `rust-version` in Cargo.toml (deploy/check.sh fails otherwise);
# a newer stable toolchain works too. The full (non-slim) image has the C compiler aws-lc-rs
# needs; neither cmake nor clang is required.
FROM rust:1.94-bookworm AS build
WORKDIR /build

# Dependency layer: build every dependency against placeholder sources, so that a change to
# authd's own code rebuilds only authd. The workspace member's manifest must exist for Cargo to
# load the workspace (the verifier crate itself is not built: it is only a dev-dependency).
COPY Cargo.toml Cargo.lock ./
COPY crates/authd-verifier/Cargo.toml crates/authd-verifier/Cargo.toml
RUN mkdir -p src crates/authd-verifier/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs crates/authd-verifier/src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src crates/authd-verifier/src

# The real sources: the code, the migrations and the password list it embeds at compile time.
COPY src src
COPY migrations migrations
COPY data data
COPY crates crates
# COPY keeps the files' own modification times, which may be older than the placeholder build:
# touch them so Cargo rebuilds authd instead of shipping the placeholder.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked

# ---- runtime ----------------------------------------------------------------------------------
# DECIDE: distroless (glibc, CA certificates, no shell, no package manager) keeps the image small
# and leaves an attacker nothing to run. Its `nonroot` user is uid/gid 65532 with a writable
# home. It has no shell and no curl, so this image has NO HEALTHCHECK: probe from outside
# instead (`GET /healthz` for liveness, `GET /readyz` for readiness: 503 while the database is
# unreachable), e.g. Kubernetes httpGet probes or your load balancer's health check. If you
# need a Docker HEALTHCHECK, build on debian:bookworm-slim instead, install `ca-certificates`
# and `curl`, add a user (`useradd --system --uid 65532 authd`), and add
#   HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /build/target/release/authd /usr/local/bin/authd

# Inside a container authd must listen on every interface for a published port to reach it;
# publish it on the host as 127.0.0.1:8080:8080 when a proxy on the same host fronts it.
ENV AUTHD_BIND=0.0.0.0:8080
# Without AUTHD_SMTP_URL mail goes to ./outbox (development only): the working directory is the
# nonroot user's writable home. authd also reads ./.env from here if one is mounted.
WORKDIR /home/nonroot
USER nonroot:nonroot
EXPOSE 8080
# DECIDE: with AUTHD_METRICS_BIND=0.0.0.0:9090 metrics leave the main port; publish 9090 only
# to your monitoring network (never to the internet).

# authd drains in-flight requests for up to 20 s on SIGTERM: give `docker stop` more than the
# default 10 s (`docker stop -t 25`, compose `stop_grace_period: 25s`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/authd"]
# `serve` creates the database if missing and migrates before listening; run
# `docker run … authd migrate` first when upgrading several instances (see the README).
CMD ["serve"]
