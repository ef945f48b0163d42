# syntax=docker/dockerfile:1
# One image runs every rnnlab process: `rnnlab api`, `rnnlab worker`, `rnnlab migrate`.
#
#   docker build -t rnnlab:cu128 .                              # worker image, CUDA 12.8 PyTorch (default)
#   docker build -t rnnlab:cpu --build-arg TORCH_VARIANT=cpu .  # API / CPU image, ~1 GB smaller
#
# TORCH_VARIANT names a PyTorch wheel index (https://download.pytorch.org/whl/<variant>): cpu, cu126, cu128...

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with torch, the dependencies and rnnlab ------------------------------
FROM ${PYTHON_IMAGE} AS build

ARG TORCH_VARIANT=cu128
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# g++ compiles the native decode step (models/native) at the end of this stage; the runtime stage needs
# no compiler, only the library it leaves in the virtual environment. Not pinned: the compiler's version
# does not change what the step computes (it only calls into libtorch), and a pinned Debian version
# disappears from the archive at the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first and from the chosen index: it is by far the largest layer and changes least. The project pins
# torch==2.13.0, which a local build such as 2.13.0+cu128 satisfies, so the next step keeps this one.
RUN pip install --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" "torch==2.13.0"

# /app is where the code lives in both stages: rnnlab is installed editable, so paths relative to the
# source tree (alembic.ini, migrations/) resolve exactly as in a checkout.
WORKDIR /app
# Only pyproject.toml here: the dependency layer is rebuilt when dependencies change, not on every edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY app ./app
COPY client ./client
COPY worker ./worker
COPY models ./models
COPY migrations ./migrations
COPY alembic.ini README.md ./
RUN pip install --no-deps -e . \
    && python -m compileall -q app worker models migrations \
    && python -m models.native

# --- runtime: the virtual environment, the migrations and an unprivileged user ------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RNNLAB_DATA_DIR=/data \
    RNNLAB_LOG_FORMAT=json

RUN groupadd --system --gid 10001 rnnlab \
    && useradd --system --uid 10001 --gid rnnlab --home-dir /home/rnnlab --create-home rnnlab \
    && mkdir -p /data \
    && chown rnnlab:rnnlab /data

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app

# Numeric, so orchestrators that enforce runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000

# No curl in a slim image: the interpreter is already there. Only the API serves HTTP; docker-compose.yml
# gives the worker its own check (a ready file) and turns this one off for the one-shot migrate job.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["rnnlab", "api", "--host", "0.0.0.0", "--port", "8000"]
