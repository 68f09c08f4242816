#!/usr/bin/env bash
# Builds .gpu/payload.tar.xz (~20 MB) in the repository root: FAISS' GPU wheel made to run on a machine
# with CUDA 13 only (the H200 machines lent here: driver 580, cuBLAS 13 from PyTorch's wheels, no
# registry). The PyPI wheel (faiss-gpu 1.15.1) is built for CUDA 12 and is 135 MB. Its libfaiss.so needs
# libcudart.so.12 (carried: 0.7 MB), libcublas.so.12 for eight functions (a shim forwarding them to
# the machine's libcublas.so.13, symbol version libcublas.so.12 as FAISS asks), libcublasLt.so.12 and
# libcurand.so.10 by name only (empty libraries with those names: FAISS' loader opens them, nothing
# calls them). Run from the repository root on an x86-64 Linux machine with pip, gcc, readelf, xz.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pyver=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
       --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download --no-deps "${pyver[@]}" -d "$work" "faiss-gpu==1.15.1" "nvidia-cuda-runtime-cu12>=12.6,<13"
site=.gpu/site; rm -rf "$site"; mkdir -p "$site"/nvidia/{cuda_runtime,cublas,curand}/lib
(cd "$site" && unzip -q "$work"/faiss_gpu-*.whl 'faiss/*' 'faiss_gpu.libs/*')
python3 "$here/prune_fatbin.py" "$site/faiss/libfaiss.so" "$work/libfaiss.so" && mv "$work/libfaiss.so" "$site/faiss/libfaiss.so"
unzip -q -j "$work"/nvidia_cuda_runtime_cu12-*.whl '*/libcudart.so.12' -d "$site/nvidia/cuda_runtime/lib"
gcc -O2 -shared -fPIC -o "$site/nvidia/cublas/lib/libcublas.so.12" "$here/cublas12_shim.c" \
    -Wl,-soname,libcublas.so.12 -Wl,--version-script="$here/cublas12.map" -ldl
echo 'int vecdb_device_check_placeholder;' > "$work/empty.c"
gcc -shared -fPIC -o "$site/nvidia/cublas/lib/libcublasLt.so.12" "$work/empty.c" -Wl,-soname,libcublasLt.so.12
gcc -shared -fPIC -o "$site/nvidia/curand/lib/libcurand.so.10" "$work/empty.c" -Wl,-soname,libcurand.so.10
# hnswlib has no wheel for Python 3.12 here: a stand-in that fails if anything calls it (gpu_check does not)
printf '%s\n' 'def __getattr__(name):' '    raise ImportError("hnswlib is not installed on this machine")' > "$site/hnswlib.py"
tar -C "$site" -cf - . | xz -T0 -6 > .gpu/payload.tar.xz
ls -la .gpu/payload.tar.xz; rm -rf "$work"
