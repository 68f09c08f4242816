"""Atomic reads and writes of int64 array slots, for numba kernels that share work with Python threads
while running without the GIL (``exact.serve_stream``).

numba has no atomics on the CPU, and a plain load in a loop may be hoisted out of it by LLVM (nothing
tells it another thread writes there). These are LLVM's own atomic instructions (``load atomic
acquire``, ``store atomic release``, ``atomicrmw`` / ``cmpxchg`` ``acq_rel``), so what a thread wrote
before a release store is visible to a thread that reads that store with an acquire load, on any CPU.
Python publishes through ``store_release`` too (called from Python: a compiled one-line kernel), never
through a numpy assignment, which carries no ordering on weakly ordered CPUs.
"""

from __future__ import annotations

import platform

import numba as nb
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _slot(context, builder, aryty, ary, idx):  # pragma: no cover (compiled)
    array = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, array, [idx])


def _int64_vector(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


@intrinsic
def load_acquire(typingctx, arr, idx):
    """``arr[idx]`` as an acquire load."""
    if not _int64_vector(arr):
        return None

    def codegen(context, builder, sig, args):  # pragma: no cover (compiled)
        return builder.load_atomic(_slot(context, builder, sig.args[0], args[0], args[1]), "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def _store_release(typingctx, arr, idx, value):
    if not _int64_vector(arr):
        return None

    def codegen(context, builder, sig, args):  # pragma: no cover (compiled)
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(value, _slot(context, builder, sig.args[0], args[0], args[1]), "release", 8)
        return context.get_dummy_value()

    return types.void(arr, idx, value), codegen


@intrinsic
def fetch_add(typingctx, arr, idx, value):
    """``arr[idx] += value`` as one atomic step; returns the value before."""
    if not _int64_vector(arr):
        return None

    def codegen(context, builder, sig, args):  # pragma: no cover (compiled)
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", _slot(context, builder, sig.args[0], args[0], args[1]), value, "acq_rel")

    return types.int64(arr, idx, value), codegen


@intrinsic
def compare_exchange(typingctx, arr, idx, expected, value):
    """``arr[idx] = value`` if it holds ``expected``, as one atomic step; returns whether it did."""
    if not _int64_vector(arr):
        return None

    def codegen(context, builder, sig, args):  # pragma: no cover (compiled)
        expected = context.cast(builder, args[2], sig.args[2], types.int64)
        value = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(_slot(context, builder, sig.args[0], args[0], args[1]), expected, value,
                               "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return types.boolean(arr, idx, expected, value), codegen


@intrinsic
def cpu_relax(typingctx):
    """In a spin loop: x86's ``pause`` (the core's other hyperthread runs on; the loop exits sooner when
    the value changes); nothing elsewhere."""
    def codegen(context, builder, sig, args):  # pragma: no cover (compiled)
        if _X86:
            pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                   "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return context.get_dummy_value()

    return types.void(), codegen


@nb.njit(nogil=True, cache=True)
def store_release(arr, idx, value):
    """``arr[idx] = value`` as a release store (callable from Python)."""
    _store_release(arr, idx, value)


@nb.njit(nogil=True, cache=True)
def linger(bell, seen, spins):
    """Spin (``spins`` pauses at most) while ``bell[0]`` still holds ``seen``, holding no GIL (a pool
    thread waiting a moment for more work: ``parallel``)."""
    for _ in range(spins):
        if load_acquire(bell, 0) != seen:
            return
        cpu_relax()
