#!/usr/bin/env bash
# What ran on the H200 machine (the repository root there), after make_payload.sh here and, for the arxiv
# rows, .gpu/arxiv/base.f16.npy = the first 32,000 rows of ../shared/data/arxiv/base.f16.npy (the working
# tree that travels is limited to 64 MiB).
set -o pipefail
L=$(find /opt /usr/local /usr/lib -name 'libcublas.so.13' 2>/dev/null | head -1)
mkdir -p /tmp/site && python3 -c "import tarfile; tarfile.open('.gpu/payload.tar.xz').extractall('/tmp/site')" || exit 4
export CUBLAS13="$L" LD_LIBRARY_PATH="$(dirname "$L"):$LD_LIBRARY_PATH" PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
python3 benchmarks/reports/gpu-h200/recipe/preflight.py || exit 3
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/test_device.py tests/test_gpu.py 2>&1 | tee "$OUT/pytest.log"
timeout 400 python3 benchmarks/gpu_check.py --data .gpu/arxiv --budget 300 --cell-seconds 2 --out "$OUT/gpu_check.json" 2>&1 | tee "$OUT/check.log"
