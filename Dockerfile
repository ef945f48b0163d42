# One image runs every rnnlab process: `rnnlab api`, `rnnlab worker`, `rnnlab migrate`, and Flower when
# built with the monitoring extra.
#
#   docker build -t rnnlab:worker .                                   # CUDA 12.8 PyTorch (the worker's default)
#   docker build -t rnnlab:cpu --build-arg TORCH_VARIANT=cpu --build-arg RNNLAB_EXTRAS=monitoring .
#
# Build arguments (every default is today's online build; .env.example and the README list them too):
#   BASE_IMAGE     a Debian bookworm image with python3 (3.11), venv and ca-certificates, for both stages.
#                  Air-gapped: one imported from debootstrap (README, "Deploy with docker compose").
#   TORCH_VARIANT  the PyTorch wheel index (https://download.pytorch.org/whl/<variant>): cpu, cu126, cu128...
#   TORCH_WHEELS   empty: torch from that index. `local`: the torch wheel in wheels/ of the build context
#                  (`pip download torch==2.13.0 --no-deps -d wheels`), no PyTorch index needed.
#   PIP_INDEX_URL  where every other package comes from (default PyPI; e.g. a company mirror).
#   EXTRA_CA_CERT  PEM text of a CA the build stage trusts besides Debian's (a company's TLS proxy); off by
#                  default. A CA certificate is public, not a secret, and the runtime stage never sees it.
#   RNNLAB_EXTRAS  optional extras of the package, comma-separated: `monitoring` adds Flower.
#
# No `# syntax=` line: the classic builder and BuildKit's built-in front end both read this file, and
# pulling docker/dockerfile would need a registry an air-gapped build does not have.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- source: the code alone, in an empty image, so the build stage takes it in one layer ----------------
# (each layer of a copy-on-write-less storage driver such as vfs is a full copy of the image: six COPY
# layers over a 1.5 GB virtual environment would be six copies of it).
FROM scratch AS source
COPY app /app/app
COPY client /app/client
COPY worker /app/worker
COPY models /app/models
COPY migrations /app/migrations
# Not README.md: pyproject.toml names it as the package's long description, and the build stage writes
# an empty one instead, so editing the documentation does not rebuild the image.
COPY alembic.ini pyproject.toml /app/

# --- build: a virtual environment with torch, the dependencies and rnnlab ------------------------------
FROM ${BASE_IMAGE} AS build

# Every argument here at the top, metadata steps early, few steps after torch: under vfs every step past
# that point copies the whole 1.5 GB tree (the price is that a changed argument rebuilds from g++ on).
ARG EXTRA_CA_CERT=""
ARG TORCH_VARIANT=cu128
ARG TORCH_WHEELS=""
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG RNNLAB_EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PATH=/opt/venv/bin:$PATH
# /app is where the code lives in both stages: rnnlab is installed editable, so paths relative to the
# source tree (alembic.ini, migrations/) resolve exactly as in a checkout.
WORKDIR /app

# g++ compiles the native extension (models/native: the decode step and the X-ray's traced layer) at the
# end of this stage, against Python's headers (python3-dev where the base has none: Debian's python3
# does not, python:3.11-slim does); the runtime stage needs no compiler, only the library it leaves in the
# virtual environment. Not pinned: the compiler's version does not change what the decode step computes
# (it only calls into libtorch; the X-ray's layer is its own arithmetic, equal to the model's forward to
# float32 rounding whatever the compiler), and a pinned Debian version disappears from the archive at the
# next point release.
# hadolint ignore=DL3008,SC2086
RUN if [ -n "$EXTRA_CA_CERT" ]; then \
        printf '%s\n' "$EXTRA_CA_CERT" > /usr/local/share/ca-certificates/rnnlab-extra.crt \
        && update-ca-certificates; \
    fi \
    && packages=g++ \
    && if ! python3 -c "import os, sysconfig; assert os.path.exists(sysconfig.get_paths()['include'] + '/Python.h')"; then \
        packages="$packages python3-dev"; \
    fi \
    && apt-get update \
    && apt-get install -y --no-install-recommends $packages \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# torch first and alone: it is by far the largest layer and changes least. The project pins torch==2.13.0,
# which a local build such as 2.13.0+cu128 satisfies, so the next step keeps this one. From a local wheel,
# its own dependencies (sympy, networkx...) come from PIP_INDEX_URL.
COPY wheels/ /tmp/wheels/
RUN if [ "$TORCH_WHEELS" = local ]; then \
        pip install --index-url "$PIP_INDEX_URL" /tmp/wheels/torch-2.13.0*.whl; \
    else \
        pip install --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" "torch==2.13.0"; \
    fi \
    && rm -rf /tmp/wheels

# Only pyproject.toml here: the dependency layer is rebuilt when dependencies change, not on every edit.
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e for e in sys.argv[1].split(',') if e]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" "$RNNLAB_EXTRAS" \
        > /tmp/requirements.txt \
    && pip install --index-url "$PIP_INDEX_URL" -r /tmp/requirements.txt

COPY --from=source /app /app
RUN touch README.md \
    && pip install --no-deps -e . \
    && python -m compileall -q app worker models migrations \
    && python -m models.native

# --- runtime: the virtual environment, the migrations and an unprivileged user ------------------------------
FROM ${BASE_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RNNLAB_DATA_DIR=/data \
    RNNLAB_LOG_FORMAT=json

RUN groupadd --system --gid 10001 rnnlab \
    && useradd --system --uid 10001 --gid rnnlab --home-dir /home/rnnlab --create-home rnnlab \
    && mkdir -p /data \
    && chown rnnlab:rnnlab /data

# The metadata before the two large copies, for the same reason as in the build stage.
WORKDIR /app
EXPOSE 8000
# No curl in a slim image: the interpreter is already there. Only the API serves HTTP; docker-compose.yml
# gives the worker and Flower their own checks and turns this one off for the one-shot migrate job.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["rnnlab", "api", "--host", "0.0.0.0", "--port", "8000"]
# Numeric, so orchestrators that enforce runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
