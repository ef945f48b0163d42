# Redis for the compose test only (tests/deploy/compose): Debian's redis-server on the Debian base image,
# because no registry is reachable to pull redis:7-bookworm. docker-compose.yml keeps the official image
# and its command runs here unchanged (`redis-server ...` from PATH, data in the working directory /data).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data \
    && chown redis:redis /data

WORKDIR /data
USER redis
CMD ["redis-server"]
