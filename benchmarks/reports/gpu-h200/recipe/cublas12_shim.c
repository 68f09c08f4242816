/* libcublas.so.12 forwarding FAISS' eight cuBLAS calls to the machine's libcublas.so.13 (device check only). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#define SYMS X(cublasCreate_v2) X(cublasDestroy_v2) X(cublasGemmEx) X(cublasGemmStridedBatchedEx) \
  X(cublasGetMathMode) X(cublasSetMathMode) X(cublasSetStream_v2) X(cublasSgemmEx)
#define X(n) __attribute__((visibility("hidden"))) void *p_##n;
SYMS
#undef X
#define X(n) __asm__(".globl " #n "\n.type " #n ",@function\n" #n ":\n\tjmp *p_" #n "(%rip)\n.size " #n ",.-" #n "\n");
SYMS
#undef X
__attribute__((constructor)) static void shim_init(void) {
  const char *name = getenv("CUBLAS13") ? getenv("CUBLAS13") : "libcublas.so.13";
  void *h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
  if (!h) { fprintf(stderr, "cublas shim: %s\n", dlerror()); abort(); }
#define X(n) if (!(p_##n = dlsym(h, #n))) { fprintf(stderr, "cublas shim: no %s\n", #n); abort(); }
  SYMS
#undef X
}
