# syntax=docker/dockerfile:1
# One image per service: docker build --build-arg SERVICE=pod-modifier -t orbit-controller/pod-modifier .
# The build runs in workspace mode from the repository root (go.work), as `make build` does;
# the Go version follows go.work's go directive.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG SERVICE
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN test -n "${SERVICE}" || (echo "--build-arg SERVICE=<name of a folder under services/> is required" >&2; exit 1)
WORKDIR /src
# Sources come in through a read-only bind mount and modules through cache mounts, so no
# layer holds either; only the binary (named after the service) leaves this stage, with the
# fixed entry point `service` linked to it.
RUN --mount=type=bind,target=/src \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/bin/${SERVICE} ./services/${SERVICE} \
 && ln -s ${SERVICE} /out/bin/service

FROM gcr.io/distroless/static:nonroot
ARG SERVICE
ARG VERSION=dev
LABEL org.opencontainers.image.title="orbit-controller ${SERVICE}" \
      org.opencontainers.image.source="https://github.com/orbit-workbench/orbit-controller" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/bin/ /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]
