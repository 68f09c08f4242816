"""Software prefetch for numba kernels that read rows at random (``llvm.prefetch``).

A graph walk knows which rows it will score a little before it scores them (it gathers a node's
neighbours first, then scores them together): asking for their cache lines as each is gathered
overlaps the memory latency with the rest of the gathering. A prefetch is only a hint: it never
faults, changes no value, and costs one instruction where the CPU ignores it.

Both kernels ask for a float32 row's first two lines (``prefetch_head``). On arxiv (kernel alone, A/B in
one process, 25 alternations, same results): the filtered walk, asking as it gathers, 1.02-1.10x QPS
in the ~50% / ~10% bands with two lines, 1.02-1.05x with one, 0.91-0.96x with the whole row (24 hints a
row: more instructions, and hints that probably crowd out the loads the walk waits on); the exact
subset scan (``score_rows``, the next eight rows while it scores eight) 1.02-1.05x on the ~1% / ~0.1%
bands, synthetic-1M's 1.02-1.05x.
"""

from __future__ import annotations

import numba as nb
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

LINE_FLOATS = 16  # float32s in a 64-byte cache line
HEAD_FLOATS = 32  # of a row, the float32s asked for ahead (two lines)
_I32 = ir.IntType(32)


@intrinsic
def prefetch(typingctx, arr, i, j):
    """Start loading the cache line of ``arr[i, j]`` (2-D array) for reading, kept in every cache level."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(i, types.Integer)
            and isinstance(j, types.Integer)):
        return None

    def codegen(context, builder, sig, args):  # pragma: no cover (compiled)
        aryty = sig.args[0]
        array = context.make_array(aryty)(context, builder, args[0])
        index = [context.cast(builder, args[1], sig.args[1], types.intp),
                 context.cast(builder, args[2], sig.args[2], types.intp)]
        pointer = cgutils.get_item_pointer(context, builder, aryty, array, index)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, _I32, _I32, _I32]), "llvm.prefetch.p0")
        # read (0), locality 3 (keep in all levels), data cache (1)
        builder.call(hint, [builder.bitcast(pointer, cgutils.voidptr_t), _I32(0), _I32(3), _I32(1)])
        return context.get_dummy_value()

    return types.void(arr, i, j), codegen


@nb.njit(inline="always")
def prefetch_head(arr, i):
    """Ask for the first ``HEAD_FLOATS`` of row ``i`` of 2-D float32 ``arr``, a line at a time (the step
    a compile-time constant: one computed from ``arr.itemsize`` cost the walk ~5% on arxiv)."""
    for j in range(0, min(arr.shape[1], HEAD_FLOATS), LINE_FLOATS):
        prefetch(arr, i, j)
