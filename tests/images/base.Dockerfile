# Cove's default sandbox image, layered on the debootstrap'ed bookworm rootfs (imported as BASE).
# Like Daytona's default image: python/python3 with pip and venv, Node.js with npm and tsx (the
# TypeScript runner of `code_run`), git, curl, build tools, and the `daytona` user with
# passwordless sudo. Debian's packages come from its archive; npm itself, tsx and typescript (pinned in build-base.sh)
# from the npm registry.
ARG BASE
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      git curl ca-certificates procps sudo less \
      python3 python3-pip python3-venv python-is-python3 python3-pylsp python3-setuptools \
      nodejs build-essential \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && useradd --create-home --home-dir /home/daytona --uid 1000 --user-group --shell /bin/bash daytona \
 && echo 'daytona ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/daytona \
 && chmod 0440 /etc/sudoers.d/daytona \
 && visudo -cf /etc/sudoers.d/daytona
# npm, tsx and typescript, installed by build-base.sh with the host's npm (its registry access and
# certificate store) as a global prefix: bin/ links and lib/node_modules/.
COPY npm-global/ /usr/local/
RUN npm --version && tsx --version && tsc --version
# pip may install beside Debian's packages (Debian marks its Python as externally managed); as
# daytona, pip falls back to the user site by itself.
ENV PIP_BREAK_SYSTEM_PACKAGES=1 PATH=/home/daytona/.local/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin
USER daytona
WORKDIR /home/daytona
ENV HOME=/home/daytona
CMD ["sleep", "infinity"]
