# cove-proxy's image for infra/kubernetes (Deployment cove-proxy; the lifecycle CronJob uses its
# curl). Build from the release binary, in a context holding cove-proxy:
#   docker build -f proxy.Dockerfile -t <registry>/cove/cove-proxy:<tag> <context>
#checkov:skip=CKV_DOCKER_2:Kubernetes probes (the pod spec's liveness and readiness) check health
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group cove
COPY cove-proxy /usr/local/bin/cove-proxy
USER 10001
ENTRYPOINT ["/usr/local/bin/cove-proxy"]
