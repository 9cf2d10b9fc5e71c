# Tether: multi-stage build on Debian bookworm, run as a non-root user.
#   docker build -t tether .
#   docker run -p 8080:8080 -v tether-data:/data -e TETHER_API_KEYS=change-me tether
# Inside a container clients are not on loopback, so open mode would refuse
# them: give it API keys. Liveness: GET /healthz, readiness: GET /readyz.
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      gcc make cmake pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev \
      liblmdb-dev libjansson-dev libssl-dev libcmocka-dev libcurl4-openssl-dev libpcre2-dev \
      libexif-dev libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_TESTS=OFF \
    && cmake --build build -j"$(nproc)"

FROM debian:bookworm-slim
# libwebsockets-evlib-uv is not pulled in by libwebsockets17 but is needed at run time.
RUN apt-get update && apt-get install -y --no-install-recommends \
      libwebsockets17 libwebsockets-evlib-uv libuv1 liblmdb0 libjansson4 libssl3 libcurl4 \
      libpcre2-8-0 libexif12 libpq5 \
      ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data --shell /usr/sbin/nologin tether \
    && mkdir -p /data && chown tether /data
COPY --from=build /src/build/tether /usr/local/bin/tether
COPY web /usr/share/tether/web
COPY agents/prompts /usr/share/tether/prompts
USER tether
VOLUME /data
EXPOSE 8080
ENV TETHER_HOST=0.0.0.0 TETHER_DATA_DIR=/data TETHER_WEB_DIR=/usr/share/tether/web \
    TETHER_PROMPTS_DIR=/usr/share/tether/prompts TETHER_PHOTOS_ROOT=/data/photos
ENTRYPOINT ["/usr/local/bin/tether"]
