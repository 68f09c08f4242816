"""Preflight on the device machine: FAISS' GPU build loads, sees the GPU, and a GPU flat / IVF search equals the CPU's."""
import json, sys, time
import numpy as np
import faiss, numba, pyarrow
print("numpy", np.__version__, "numba", numba.__version__, "pyarrow", pyarrow.__version__, "faiss", faiss.__version__)
print("gpus", faiss.get_num_gpus())
if faiss.get_num_gpus() < 1:
    sys.exit("FAISS sees no GPU")
rng = np.random.default_rng(0)
x = rng.normal(size=(20000, 64)).astype("float32"); q = rng.normal(size=(100, 64)).astype("float32")
res = faiss.StandardGpuResources()
t = time.perf_counter()
g = faiss.GpuIndexFlatL2(res, 64); g.add(x); dg, ig = g.search(q, 10)
c = faiss.IndexFlatL2(64); c.add(x); dc, ic = c.search(q, 10)
print("flat gpu==cpu ids", float((ig == ic).mean()), "max |d| diff", float(np.abs(dg - dc).max()), f"{time.perf_counter() - t:.2f}s")
ivf = faiss.index_cpu_to_gpu(res, 0, faiss.index_factory(64, "IVF64,Flat")); ivf.train(x); ivf.add(x); ivf.nprobe = 64
di, ii = ivf.search(q, 10)
print("ivf(all lists) gpu==cpu flat ids", float((ii == ic).mean()))
import vecdb
print("device_info", json.dumps(vecdb.device_info()))
ok = (ig == ic).mean() > 0.99 and (ii == ic).mean() > 0.99
sys.exit(0 if ok else "GPU results differ from the CPU's")
