# Tether: multi-stage build on Debian bookworm, run as a non-root user.
#   docker build -t tether .
#   docker run -p 8080:8080 -v tether-data:/data -e TETHER_API_KEYS=change-me tether
# Inside a container clients are not on loopback, so open mode would refuse
# them: give it API keys. Liveness: GET /healthz (HEALTHCHECK), readiness:
# GET /readyz. tests/integration/docker.test.mjs checks, without a Docker
# engine, what it can of this file: .dockerignore, the install layout the
# image copies, --check-config with the image's environment, the HEALTHCHECK
# command against a live server.
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      gcc make cmake pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev \
      liblmdb-dev libjansson-dev libssl-dev libcurl4-openssl-dev libpcre2-dev \
      libexif-dev libpq-dev nodejs npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The locked npm packages first (a layer kept while only sources change): the
# build makes the tokenizer ranks from gpt-tokenizer (agents/llm/tokenizer_ranks.mjs).
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_TESTS=OFF \
    && cmake --build build -j"$(nproc)" \
    && DESTDIR=/stage cmake --install build --prefix /usr/local

FROM debian:bookworm-slim
# libwebsockets-evlib-uv is not pulled in by libwebsockets17 but is needed at run time.
# libcurl4, libexif12 and libpq5 are loaded by dlopen on first use (not in the
# binary's needed list: start-up time), so nothing but this list installs them.
RUN apt-get update && apt-get install -y --no-install-recommends \
      libwebsockets17 libwebsockets-evlib-uv libuv1 liblmdb0 libjansson4 libssl3 libcurl4 \
      libpcre2-8-0 libexif12 libpq5 poppler-utils \
      ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data --shell /usr/sbin/nologin tether \
    && mkdir -p /data && chown tether /data
# bin/tether and share/tether/{web,prompts,tokenizer}: the binary finds them
# next to itself (server/paths.h).
COPY --from=build /stage/usr/local /usr/local
USER tether
VOLUME /data
EXPOSE 8080
ENV TETHER_HOST=0.0.0.0 TETHER_PORT=8080 TETHER_DATA_DIR=/data TETHER_PHOTOS_ROOT=/data/photos
# No curl in the image: bash's /dev/tcp asks for /healthz over loopback.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${TETHER_PORT:-8080} && printf 'GET /healthz HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/tether"]
