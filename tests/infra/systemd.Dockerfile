# The sandbox base image (tests/images/build-base.sh) with systemd as PID 1: a stand-in for a
# Debian 12 runner host, on which test_cloud_init.py runs the runner's cloud-init script.
ARG BASE=cove-sandbox-base:latest
FROM ${BASE}
USER root
ENV HOME=/root
WORKDIR /root
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd systemd-sysv \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && systemctl mask getty.target console-getty.service systemd-logind.service
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
