# nasfer: emotion-recognition API + mobile web client, served by `nasfer serve` (gunicorn processes,
# each reading requests with waitress's I/O loop; /healthz is answered by that loop).
# CPU only and without torch: the runtime needs numpy, onnxruntime, opencv-python-headless, pillow,
# flask, gunicorn, waitress and prometheus_client (the `train` extra, which brings torch, is not installed).
#
#   docker build -t nasfer .
#   docker run --rm -p 8000:8000 nasfer                          # http://localhost:8000/
#   docker run --rm -p 8000:8000 -v "$PWD/models:/models:ro" nasfer --model /models/model.onnx --workers 2
#
# Arguments after the image name are extra `nasfer serve` flags, appended after the ENTRYPOINT's
# `--host 0.0.0.0 --port 8000`, so a `--port`/`--host` among them overrides those (the last one wins).
# The container listens on 0.0.0.0:8000 unless told otherwise; map that port with -p. The HEALTHCHECK
# reads the port the server was started with from its command line, so it follows such an override.
# See docs/deploy.md, section 5.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/python -c "import importlib.util as u, sys; sys.exit(1 if u.find_spec('torch') else 0)" \
 && /opt/venv/bin/nasfer serve --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="nasfer" \
      org.opencontainers.image.description="Facial emotion recognition API and mobile web client (ONNX Runtime, CPU)"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1
RUN groupadd --system --gid 10001 nasfer \
 && useradd --system --uid 10001 --gid nasfer --home-dir /home/nasfer --create-home --shell /usr/sbin/nologin nasfer
COPY --from=build /opt/venv /opt/venv
USER nasfer:nasfer
WORKDIR /home/nasfer
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import re, sys, urllib.request; port = (re.findall(r'\\x00--port[=\\x00](\\d+)(?=\\x00)', '\\x00' + open('/proc/1/cmdline').read()) or ['8000'])[-1]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["nasfer", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD []
