#!/usr/bin/env bash
# GPU check (issue 16): the speed benchmark on a GPU and a short DDP fit, in under 5 minutes.
#
# The lent GPU machines run their own image (python3 3.12 with CUDA torch, Lightning, JAX, pandas, scipy...)
# and reach no package registry, so the few packages zconf needs beyond that image travel as wheels:
#
#   here (with PyPI):  bash benchmarks/gpu_check.sh prepare      # writes .gpu_wheels/ (git-ignored, ~14 MB)
#   there:             bash benchmarks/gpu_check.sh run           # device tool: carry=[".gpu_wheels"]
#
# `run` installs the wheels with --no-deps into a folder of their own (the image's torch is kept), puts src/ on
# PYTHONPATH, checks that ZConf's in-memory loader holds the counts on the GPU, times ZConf, ZConf through
# scvi-tools' loader, SCVI and the plain PyTorch loop at 10,000 x 1,000 and 100,000 x 2,000
# (benchmarks/results/speed_gpu.{md,json}, also copied to $OUT), and fits ZConf and PairedVAE under DDP.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.gpu_wheels
# what the GPU image lacks of zconf's dependency closure (found against the image's package list in
# ../.library/device/KINDS.md, 2026-11-17), pinned to the versions this project tests with
PACKAGES=(anndata==0.12.19 array-api-compat==1.16.0 donfig==0.8.1.post1 google-crc32c==1.9.0 legacy-api-wrap==1.5
  ml-collections==1.1.0 mudata==0.3.10 natsort==8.4.0 numcodecs==0.16.6 pynndescent==0.7.0 pyro-api==0.1.2
  pyro-ppl==1.9.2 scanpy==1.11.5 scverse-misc==0.0.3 scvi-tools==1.4.2 session-info2==0.4.1 sparse==0.19.3
  umap-learn==0.5.12 zarr==3.1.6)

prepare() {
  local pip=.venv/bin/pip
  mkdir -p "$WHEELS"
  "$pip" wheel --quiet --no-deps -w "$WHEELS" docrep==0.3.2 # an sdist only: built here (pure Python)
  "$pip" download --quiet --no-deps --dest "$WHEELS" --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform any "${PACKAGES[@]}"
  du -sh "$WHEELS"
}

run() {
  local deps=/tmp/zconf_gpu_deps out="${OUT:-/tmp/zconf_gpu_out}"
  mkdir -p "$out"
  python3 -m pip install --quiet --no-index --no-deps --target "$deps" "$WHEELS"/*.whl
  export PYTHONPATH="$deps:$PWD/src:$PWD" MPLBACKEND=Agg
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  timeout 60 python3 - <<'EOF'
import torch, zconf
from benchmarks.speed import sparse_counts

adata = sparse_counts(2000, 200)
zconf.ZConf.setup_anndata(adata, treatment_key="treatment", continuous_covariate_keys=["x0", "x1", "x2", "x3"])
model = zconf.ZConf(adata, n_latent=1)
model.train(max_epochs=2, n_init=1, accelerator="gpu", enable_progress_bar=False)
loader = model.trainer.train_dataloader
field = loader.fields["X"]
assert field.device_csr is not None and field.device_csr[2].is_cuda, "counts are not held on the GPU"
print("in-memory loader on", field.device_csr[2].device, "| Z-hat", model.get_latent_representation().shape)
EOF
  timeout 150 python3 -m benchmarks.speed --accelerator gpu --sizes 10000x1000 100000x2000 --epochs 2
  cp benchmarks/results/speed_gpu.md benchmarks/results/speed_gpu.json "$out"/
  timeout 90 python3 - <<'EOF'
import numpy as np, zconf

adata = zconf.data.simulate("confounded", n_obs=600, n_vars=50, random_state=0)
zconf.ZConf.setup_anndata(adata, layer="counts", treatment_key="treatment", continuous_covariate_keys=["x0", "x1", "x2", "x3"])
model = zconf.ZConf(adata, n_hidden=32, n_latent=1)
ddp = {"accelerator": "gpu", "devices": 1, "strategy": "ddp_find_unused_parameters_true"}
model.train(max_epochs=4, enable_progress_bar=False, **ddp)
adata.obs["dataset"] = np.where(adata.obs["treatment"] == 1, "stim", "ctrl")
zconf.PairedVAE.setup_anndata(adata, layer="counts", dataset_key="dataset")
paired = zconf.PairedVAE(adata, n_latent=4, n_hidden=32)
paired.train(max_epochs=2, adversarial="alternate", enable_progress_bar=False, **ddp)
assert np.isfinite(model.get_latent_representation(soft=True)).all()
print("DDP fits: world size", model.trainer.world_size, "| finite latents")
EOF
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: bash benchmarks/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
