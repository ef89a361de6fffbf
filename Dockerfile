# inference-fleet: one image for every role. The command picks the process of DESIGN.md:
#   api (default) | worker control-plane | worker gpu-host --host-id H | migrate
#
#   docker build -t inference-fleet .
#   docker run --rm inference-fleet --help
#
# GPU hosts: node-llama-cpp's prebuilt CUDA binaries are in node_modules, but they load only
# where the CUDA runtime libraries (libcudart, libcublas) are present; the driver itself
# (libcuda) comes from the NVIDIA container toolkit at run time. Build with
#   docker build --build-arg CUDA_RUNTIME=12-8 -t inference-fleet:cuda .
# to add them from NVIDIA's Debian 12 repository. Without them `FLEET_LLAMA_GPU=auto` falls
# back to the CPU build.
FROM node:20-bookworm-slim

ARG CUDA_RUNTIME=""
RUN set -eux; \
    if [ -n "$CUDA_RUNTIME" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends ca-certificates curl; \
      curl -fsSLo /tmp/cuda-keyring.deb \
        https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb; \
      dpkg -i /tmp/cuda-keyring.deb; rm /tmp/cuda-keyring.deb; \
      apt-get update; \
      apt-get install -y --no-install-recommends "cuda-cudart-$CUDA_RUNTIME" "libcublas-$CUDA_RUNTIME"; \
      ls -d /usr/local/cuda-*/targets/x86_64-linux/lib > /etc/ld.so.conf.d/zz-fleet-cuda.conf; \
      ldconfig; \
      apt-get purge -y curl; apt-get autoremove -y; \
      rm -rf /var/lib/apt/lists/*; \
    fi

# NODE_LLAMA_CPP_SKIP_DOWNLOAD: never build llama.cpp from source, neither at install nor at
# run time; use the prebuilt binaries (CUDA/Vulkan where they load, else CPU).
# FLEET_DATA_DIR: a GPU host keeps its identity key there (hosts/<id>/identity.key); otherwise,
# like FLEET_TOOLS_DIR, unused when DATABASE_URL and TEMPORAL_ADDRESS are set. Both writable
# for the non-root user.
ENV NODE_ENV=production \
    NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
    FLEET_DATA_DIR=/app/.data \
    FLEET_TOOLS_DIR=/app/.tools \
    FLEET_MODELS_DIR=/models

WORKDIR /app

# Dependencies first, so code changes reuse this layer. `npm install`, not `npm ci`: the
# lockfile cannot list other platforms' builds of node-llama-cpp and @swc/core.
# tsx is a production dependency: bin/fleet.js runs the TypeScript sources as they are.
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund \
    && npm cache clean --force

COPY tsconfig.json ./
COPY bin/ ./bin/
COPY src/ ./src/
COPY migrations/ ./migrations/

# /models is created here, owned by the runtime user, so a fresh named volume mounted on it
# inherits that ownership.
RUN mkdir -p /app/.data /app/.tools /models \
    && chown node:node /app/.data /app/.tools /models

# The node image's unprivileged user (uid 1000).
USER node

EXPOSE 8080
ENTRYPOINT ["node", "bin/fleet.js"]
CMD ["api"]
