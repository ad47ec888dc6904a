# syntax=docker/dockerfile:1
# Catzilla container image: build on Debian 12, run on debian:bookworm-slim as a non-root user.
#
#   docker build -t catzilla .
#   docker run --rm -p 8080:8080 --ulimit memlock=-1 \
#       --security-opt seccomp=deploy/seccomp-io_uring.json catzilla
#
# io_uring needs the seccomp profile above: Docker Engine 25+ (EPERM) and podman (ENOSYS) block
# io_uring_setup/enter/register in their default profiles. Registered buffers need a memlock
# limit above the 8 MiB default, hence --ulimit memlock=-1. scripts/container-test.sh
# builds and runs this image for real with podman.

############################ build ############################
FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config liburing-dev libjemalloc-dev node-llhttp \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j2 build/catzilla \
 && strip --strip-debug -o /catzilla build/catzilla

############################ runtime ##########################
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# Runtime libraries only (jemalloc is linked in statically); media-types
# provides /etc/mime.types for Content-Type.
RUN apt-get update \
 && apt-get install -y --no-install-recommends liburing2 media-types \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --gid 10001 catzilla \
 && useradd --uid 10001 --gid catzilla --no-create-home --no-log-init \
        --home-dir /nonexistent --shell /usr/sbin/nologin catzilla
COPY --from=build /catzilla /usr/local/bin/catzilla
COPY --from=build /src/public /usr/share/catzilla/public
# Numeric, so that Kubernetes' runAsNonRoot can verify it; 10001 is the catzilla user above.
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# --check-health is built into the binary, so the image needs no curl. "auto" reads the flags
# and CATZILLA_* variables of the server (PID 1) from /proc and probes its health route wherever
# they put it (--admin, by default 127.0.0.1:9090 inside the container), so it follows --port and
# --admin. Build with `podman build --format docker`: the OCI image format has no HEALTHCHECK.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/catzilla","--check-health","auto"]
ENTRYPOINT ["/usr/local/bin/catzilla"]
CMD []
