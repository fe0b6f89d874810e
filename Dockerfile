# sumd in a container: a static binary on distroless, as a non-root user,
# with the database in a volume.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t sumd .
#   chown 65532 /etc/sumd/signing.key && chmod 400 /etc/sumd/signing.key   # the image runs as 65532
#   docker run -d --stop-timeout 30 -p 8080:8080 -v sumd-data:/var/lib/sumd \
#     -v /etc/sumd/signing.key:/run/secrets/signing.key:ro -e SUMD_KEY=/run/secrets/signing.key \
#     -e SUMD_NAME=sum.corp.example sumd serve -create   # -create on the first start only:
#   then recreate the container without it (docker rm -f, the same docker run without -create);
#   left on, an unmounted volume one day becomes a new, empty log (sumd warns at each start)
#
# The configuration (flags, SUMD_* variables, a -config file): README.md#configuration.
# --stop-timeout: Docker's default of 10 s is no more than sumd's -shutdown-timeout.
# The health check, the key's owner and mode, upgrades: docs/operations.md.

FROM golang:1.26-bookworm AS build
# The version sumd version, /version and sumd_build_info report, as make
# build stamps it; without it, "devel".
ARG VERSION=devel
ENV GOTOOLCHAIN=local CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags="-s -w -X main.buildVersion=${VERSION}" -o /out/sumd ./cmd/sumd \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sumd /usr/local/bin/sumd
# The volume is created owned by the nonroot user (65532), the only writer.
COPY --from=build --chown=65532:65532 /out/data /var/lib/sumd
WORKDIR /var/lib/sumd
VOLUME /var/lib/sumd
USER 65532:65532
ENV SUMD_DB=/var/lib/sumd/sumd.db SUMD_LISTEN=:8080 SUMD_LOG_FORMAT=json
EXPOSE 8080
# Healthy while the log serves (ok or degraded); with -read-auth on, sumd
# status checks /healthz only. Plain HTTP: with TLS on (-tls-cert, with or
# without client certificates) replace this check. See docs/operations.md.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/sumd", "status", "-url", "http://127.0.0.1:8080", "-timeout", "8s"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sumd"]
CMD ["serve"]
