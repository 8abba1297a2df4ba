# The node's image for the docker platform. `harness image build` builds it (see docs/platforms.md).
#
# With a registry:     docker build -t dynamo-node:latest .
# Without a registry:  scripts/make-base-image.sh        (debootstrap + docker import)
#                      harness image build --base dynamo-base:bookworm
# The debootstrap base has python3, iptables, iproute2, procps and faketime, but not the node's
# httptools nor yarl >= 1.9, so `harness image build` puts wheels (*.whl, fetched with the host's
# pip) at the top of the build context and they are unpacked here; with no wheels given, pip
# installs from the registry. The outside stores (etcd-server, redis-server, redis-sentinel)
# come the same way: for the debootstrap base, .deb files the host's apt downloaded (only those
# the base lacks) are at the top of the context and installed with dpkg; with none given (a
# python:* base), apt-get installs them from the base's sources.
ARG BASE=python:3.11-slim
FROM ${BASE}

RUN set -e; \
    need=""; \
    for tool in iptables tc ps; do command -v "$tool" >/dev/null || need=1; done; \
    ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || need=1; \
    if [ -n "$need" ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends iptables iproute2 procps faketime; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    ln -sf "$(ls /usr/lib/*/faketime/libfaketime.so.1 | head -n 1)" /usr/local/lib/libfaketime.so.1

# The outside stores for --store etcd / --store redis on the docker platform. No service starts
# during the build (policy-rc.d); the harness runs the programs itself.
COPY Dockerfile *.deb /opt/dynamo/debs/
RUN set -e; \
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
    if ls /opt/dynamo/debs/*.deb >/dev/null 2>&1; then dpkg -i /opt/dynamo/debs/*.deb; fi; \
    for tool in etcd redis-server redis-sentinel; do \
        command -v "$tool" >/dev/null || need=1; \
    done; \
    if [ -n "${need:-}" ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends etcd-server redis-server redis-sentinel; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    rm -rf /opt/dynamo/debs /usr/sbin/policy-rc.d; \
    etcd --version >/dev/null; redis-server --version >/dev/null

# The Dockerfile is named so that the copy works when no wheel is given.
COPY Dockerfile *.whl /opt/dynamo/wheels/
ENV PYTHONPATH=/opt/dynamo:/opt/dynamo/lib PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN set -e; \
    ok='import sys, httptools, msgpack, yarl; sys.exit(tuple(map(int, yarl.__version__.split(".")[:2])) < (1, 9))'; \
    if ! python3 -c "$ok" 2>/dev/null; then \
        if ls /opt/dynamo/wheels/*.whl >/dev/null 2>&1; then \
            for w in /opt/dynamo/wheels/*.whl; do python3 -m zipfile -e "$w" /opt/dynamo/lib; done; \
        else \
            python3 -m pip install --no-cache-dir "httptools>=0.6" "yarl>=1.9" "msgpack>=1.0"; \
        fi; \
    fi; \
    rm -rf /opt/dynamo/wheels; \
    python3 -c "$ok"

COPY node /opt/dynamo/node
# fail the build, not the first test, when the node cannot import what it needs
RUN python3 -c "import node.__main__, node.http_api"
WORKDIR /opt/dynamo
# dynamo-harness.stores: the stores this image can run (the docker platform checks it)
LABEL org.opencontainers.image.title="dynamo-node" \
      org.opencontainers.image.description="The reference Dynamo store, for the fault-injection harness" \
      dynamo-harness.stores="dynamo etcd redis"
ENTRYPOINT ["python3", "-m", "node"]
