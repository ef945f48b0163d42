# PostgreSQL for the compose test only (tests/deploy/compose): Debian's server on the Debian base image,
# because no registry is reachable to pull postgres:16-bookworm. docker-compose.yml keeps the official
# image; this one honours the same contract: POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB create the
# database on first start, data in /var/lib/postgresql/data, pg_isready for the health check.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql

# The server's directory: a named volume mounted here starts with this owner, so no root step at start.
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
USER postgres
# SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave), as in the
# official image.
STOPSIGNAL SIGINT
ENTRYPOINT ["sh", "/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
