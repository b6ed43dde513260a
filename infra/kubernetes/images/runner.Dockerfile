# The runner agent's image for infra/kubernetes (DaemonSet cove-runner). Build from the release
# binaries, in a context holding cove-runner and cove-toolbox:
#   docker build -f runner.Dockerfile -t <registry>/cove/cove-runner:<tag> <context>
# rclone + fuse3: volume mounts; iptables: sandbox isolation and egress policies; curl + python3:
# the enrollment script.
#checkov:skip=CKV_DOCKER_2:Kubernetes probes (the pod spec's liveness and readiness) check health
#checkov:skip=CKV_DOCKER_3:the agent manages Docker, iptables and mounts on the node: it runs as root (see base/runner.yaml)
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl python3 rclone fuse3 iptables \
 && rm -rf /var/lib/apt/lists/*
COPY cove-runner /usr/local/bin/cove-runner
COPY cove-toolbox /usr/local/lib/cove/cove-toolbox
ENTRYPOINT ["/usr/local/bin/cove-runner"]
