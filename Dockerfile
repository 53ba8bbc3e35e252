# One image for every role (broker, learner, actor), built with the same make targets as a
# developer uses. Build: docker build -t fleetrl .   Run: docker run fleetrl broker
FROM debian:bookworm-slim AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libzmq3-dev libuv1-dev libsqlite3-dev libcmocka-dev \
      libopenblas-dev flatbuffers-compiler python3 python3-flatbuffers python3-zmq \
      python3-numpy sqlite3 libmujoco-dev libmujoco-samples ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make clean && make all && make unit-tests

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libzmq5 libuv1 libsqlite3-0 libopenblas0-pthread libmujoco2.2.2 libmujoco-samples sqlite3 \
      curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /home/fleetrl --uid 10001 fleetrl \
    && mkdir -p /data && chown fleetrl /data
COPY --from=build /src/build/fleetrl /usr/local/bin/fleetrl
# MuJoCo task files and the models fleetrl ships (the humanoid comes from libmujoco-samples).
COPY --from=build /src/lib/mujoco/ /usr/local/share/fleetrl/models/
USER fleetrl
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/fleetrl"]
CMD ["--help"]
