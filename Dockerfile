# vdwgen web app, GPU-capable image.
#   docker build -t vdwgen .
#   docker run --gpus all -p 8501:8501 -v vdwgen-data:/data vdwgen
# Not built on the development machines (no Docker daemon there): written to be correct
# by reading. It also runs without a GPU (everything falls back to the CPU).
#
# Why a plain Python base and no nvidia/cuda image: torch==2.13.0 from PyPI for Linux
# x86_64 is the CUDA build, and it brings the CUDA runtime, cuBLAS, cuDNN, NCCL ... as
# nvidia-* wheels in site-packages. onnxruntime-gpu uses those same libraries (the
# runtime engine imports torch first or calls onnxruntime.preload_dlls()), so the image
# needs only the NVIDIA driver, which `docker run --gpus all` mounts from the host.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layers, so a code change does not reinstall them.
# torch alone first (see requirements-torch.txt), then the GPU pins (onnxruntime-gpu,
# never plain onnxruntime).
COPY requirements-torch.txt requirements-gpu.txt ./
RUN pip install -r requirements-torch.txt
RUN pip install -r requirements-gpu.txt

# The project: code, the dataset under data/ and exported models under artifacts/
# (see .dockerignore for what stays out).
COPY . .
RUN pip install --no-deps . \
    && useradd --create-home --uid 1000 vdwgen \
    && mkdir -p /data \
    && chown vdwgen:vdwgen /data

# The package is installed into site-packages, so tell it where the checkout is.
ENV VDWGEN_ROOT=/app \
    VDWGEN_DATA_DIR=/data \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
VOLUME ["/data"]

USER vdwgen
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]

CMD ["streamlit", "run", "webapp/app.py", \
     "--server.headless", "true", \
     "--server.address", "0.0.0.0", \
     "--server.port", "8501", \
     "--server.enableStaticServing", "true", \
     "--browser.gatherUsageStats", "false", \
     "--client.toolbarMode", "viewer"]
