# mmpipe container image: `docker build -t mmpipe --build-arg VERSION=$(git describe --tags --always --dirty) \
#   --build-arg COMMIT=$(git rev-parse --short HEAD) --build-arg BUILD_TIME=$(date -u +%Y-%m-%dT%H:%M:%SZ) .`
# The build stage builds bin/mmpipe exactly as `make build` does here (cgo on: lmdb-go compiles its bundled C)
# and fetches the ONNX Runtime library with `make ort`; the runtime stage holds the binary, that library,
# CA certificates and a non-root user, and no compiler. cmd/mmpipe/dockerfile_test.go checks that every path
# copied here exists in the repository or is produced by the Makefile targets the build stage runs.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
# npm fetches onnxruntime-node for `make ort`; gcc and libc headers come with the golang image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY Makefile ./
COPY cmd ./cmd
COPY extract ./extract
COPY pipeline ./pipeline
COPY store ./store
COPY train ./train
ARG VERSION=dev
ARG COMMIT=unknown
ARG BUILD_TIME=unknown
RUN make ort \
 && make build VERSION="${VERSION}" COMMIT="${COMMIT}" BUILD_TIME="${BUILD_TIME}" \
 && ./bin/mmpipe version

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mmpipe \
 && useradd --system --uid 10001 --gid mmpipe --create-home --home-dir /home/mmpipe mmpipe \
 && mkdir -p /data \
 && chown mmpipe:mmpipe /data
COPY --from=build /src/bin/mmpipe /usr/local/bin/mmpipe
COPY --from=build /src/.ort/libonnxruntime.so.1 /opt/onnxruntime/lib/libonnxruntime.so.1
ENV ONNXRUNTIME_SHARED_LIBRARY_PATH=/opt/onnxruntime/lib/libonnxruntime.so.1
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/mmpipe"]
CMD ["--help"]
