# orchestrator-host in a container: built on Debian 12 with the same apt
# packages and CMake steps that `make test` proves, run as a non-root user
# with its state in a volume and its connection settings from the
# environment.  Build: make docker-build; run: make docker-run (docs/deploy.md).

# ---- build -----------------------------------------------------------------
FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
# Exactly the list scripts/install-deps.sh installs for `make`, so the two
# cannot drift (tests/integration/test_packaging.py checks this file).
COPY packaging/packages-run.txt /tmp/packages-run.txt
RUN apt-get update \
 && grep -v '^\s*#' /tmp/packages-run.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build build -j"$(nproc)" \
 && DESTDIR=/out cmake --install build

# ---- run -------------------------------------------------------------------
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
# The shared libraries behind the -dev packages above, and nothing else.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
	libevent-2.1-7 \
	libmosquitto1 \
	libmicrohttpd12 \
	libgnutls30 \
	libjansson4 \
	libsqlite3-0 \
	libpq5 \
	zlib1g \
	libavahi-client3 \
	tzdata \
	ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --home-dir /var/lib/orchestrator-host \
	--shell /usr/sbin/nologin orchestrator-host \
 && install -d -o orchestrator-host -g orchestrator-host -m 0750 /var/lib/orchestrator-host
COPY --from=build /out/usr/bin/orchestrator-host /usr/bin/orchestrator-host
COPY --from=build /out/usr/lib/orchestrator-host/ /usr/lib/orchestrator-host/
COPY packaging/docker.json /etc/orchestrator-host/orchestrator-host.json

# Connection settings and secrets come from the environment
# (OH_MQTT_HOST, OH_MQTT_PORT, OH_MQTT_USERNAME, OH_MQTT_PASSWORD,
# OH_HTTP_BIND, OH_HTTP_PORT); API tokens from a mounted file at
# /run/secrets/orchestrator-host-tokens.json (http.tokens_file).
ENV OH_HTTP_BIND=0.0.0.0 \
    OH_HTTP_PORT=8080
VOLUME /var/lib/orchestrator-host
WORKDIR /var/lib/orchestrator-host
USER orchestrator-host
EXPOSE 8080
# Healthy while the host answers /healthz with its broker connected; the
# probe is the binary itself (the image has no curl).  Any failure is exit
# 1: Docker reserves 2, which --probe uses for a URL it cannot ask.
HEALTHCHECK --interval=30s --timeout=10s --start-period=15s --retries=3 \
	CMD /usr/bin/orchestrator-host --probe "http://127.0.0.1:${OH_HTTP_PORT:-8080}/healthz" || exit 1
ENTRYPOINT ["/usr/bin/orchestrator-host"]
CMD ["--config", "/etc/orchestrator-host/orchestrator-host.json"]
