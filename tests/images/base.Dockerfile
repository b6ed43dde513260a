# Layer on top of the debootstrap'ed bookworm rootfs (imported as BASE).
ARG BASE
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends git python3 python3-pylsp python3-setuptools ca-certificates procps \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && useradd --create-home --home-dir /home/daytona --uid 1000 --user-group --shell /bin/bash daytona
USER daytona
WORKDIR /home/daytona
ENV HOME=/home/daytona
CMD ["sleep", "infinity"]
