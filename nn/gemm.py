"""Matrix multiply on the OpenCL device: ``C = op(A) @ op(B) (+ C)`` for any sizes.

One :class:`Gemm` per device (:func:`get_gemm`) builds ``kernels/matmul.cl`` once and
enqueues, never waits, on the device's in-order queue. Per shape it picks:

* direct, B not transposed (``nn``, ``tn``): outer-product tiles, each work-item accumulates
  ``OP_TILE`` entries of C from broadcasts of A and vector loads of rows of B;
* direct ``nt`` (the forward ``X @ W^T``): dot tiles, vectors along k for both A and B;
* packed, for large products and every ``tt``: both operands are first copied into
  zero-padded panels that one product kernel reads front to back (the hardware prefetcher
  does not follow the page-strided walks down a column of a wide row-major matrix).

Odd sizes are exact and nothing outside the matrices is read or written; kernels/matmul.cl
explains how each path handles partial tiles.
"""

from __future__ import annotations

import weakref

import numpy as np
import pyopencl as cl

from .device import Device, get_device
from .launch import i32, launch

KERNEL_FILE = "matmul.cl"

# Tiles (rows, columns[, k-vector width]) per work-item, measured best on the 2-core AVX-512
# CPU with PoCL 3.0: direct outer product, direct dot (nt), packed.
OP_TILE = (4, 16)
# The outer-product tile where native float vectors are narrower than 16 (AVX2): 8 rows x 8
# columns is 8 accumulators of one 8-wide register each (4 x 16 is 8 of two registers, and
# rows are read as scalars: half the rows per B load). On the 2-core AVX2 EPYC, the training
# products of an MLP 1080-256-256-216 at batch 32 (dW = dY^T X with k = 32, dX = dY W with
# k = 216, 256) run about 2-3x faster (20 -> 50-65 GFLOP/s; 4 x 16, 6 x 16, 8 x 16, 16 x 8,
# 12 x 8, 8 x 4, 4 x 8 all measured slower). A tile changes no result (see PACK_TILE_NARROW).
OP_TILE_NARROW = (8, 8)
DOT_TILE = (4, 4, 16)
PACK_TILE = (8, 16)
# The packed tile where the device's native float vectors are narrower than 16 (AVX2): 8 x 16
# is 16 accumulators of two 8-wide registers there and spills; 4 x 16 runs about 2.5x faster
# (m, n, k of 128 to 1080, measured on the 2-core AVX2 EPYC). A tile changes no result: each
# entry of C sums along k in order whatever the tile.
PACK_TILE_NARROW = (4, 16)
# The dot tile of nt products with a few rows (a recurrence step of a batch, see
# get_rows_gemm): 8 rows x 1 column per work-item, so a batch of 8 reads each row of B once,
# 8-wide along k (9 vector registers: no spills on AVX2). On the 2-core AVX2 CPU, m = 8,
# n and k in 256..1080: about 40 GFLOP/s against about 21 for DOT_TILE.
ROWS_DOT_TILE = (8, 1, 8)

_WIDTHS = (1, 2, 4, 8, 16)
_DIRECT = ("gemm_nn", "gemm_tn", "gemm_nn_row", "gemm_tn_row", "gemm_nt", "gemm_nt_row")
_DIRECT_DTYPES = [np.int32, np.int32, np.int32, np.int32, None, None, None,
                 np.int32, np.int64, np.int64, np.int64]
_EPI_DTYPES = [np.int32, np.int32, np.int32, np.int32, None, None, None, None, np.int32,
               np.int32, np.int64, np.int64, np.int64]
_PACK_DTYPES = [np.int32, np.int32, None, None, np.int32, np.int32, np.int64, np.int64]
_PACKED_DTYPES = [np.int32, np.int32, np.int32, None, None, None, np.int32, np.int64, np.int64,
                  np.int64]


def _count(value, name: str, limit: int = 2**31 - 1) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not 0 <= value <= limit):
        raise ValueError(f"gemm: {name} must be an integer in [0, {limit}], got {value!r}")
    return int(value)


class Gemm:
    """Matrix multiply kernels of one device; see :meth:`gemm`."""

    def __init__(self, device: Device | None = None, *, op_tile=None, dot_tile=DOT_TILE,
                 pack_tile=None):
        """Build the kernels. Tiles per work-item: ``op_tile`` and ``pack_tile`` are (rows,
        columns), ``dot_tile`` is (rows, columns, k-vector width); the column count of
        op/pack tiles and the dot vector width must be 1, 2, 4, 8 or 16. ``op_tile`` /
        ``pack_tile`` None: :data:`OP_TILE` / :data:`PACK_TILE` on devices with 16-wide native
        float vectors, else :data:`OP_TILE_NARROW` / :data:`PACK_TILE_NARROW`."""
        self.device = device or get_device()
        wide = self.device.cl_device.native_vector_width_float >= 16
        if op_tile is None:
            op_tile = OP_TILE if wide else OP_TILE_NARROW
        if pack_tile is None:
            pack_tile = PACK_TILE if wide else PACK_TILE_NARROW
        self.op_tile = tuple(int(x) for x in op_tile)
        self.dot_tile = tuple(int(x) for x in dot_tile)
        self.pack_tile = tuple(int(x) for x in pack_tile)
        (op_tm, op_vw), (dot_tm, dot_tn, dot_vw) = self.op_tile, self.dot_tile
        pk_tm, pk_vw = self.pack_tile
        if (min(op_tm, dot_tm, dot_tn, pk_tm) < 1
                or not {op_vw, dot_vw, pk_vw} <= set(_WIDTHS)):
            raise ValueError(f"Gemm: invalid tiles op_tile={op_tile} dot_tile={dot_tile} "
                             f"pack_tile={pack_tile}; sizes must be >= 1 and vector widths "
                             f"one of {_WIDTHS}")
        opts = (f"-DOP_TM={op_tm}", f"-DOP_VW={op_vw}", f"-DDOT_TM={dot_tm}",
                f"-DDOT_TN={dot_tn}", f"-DDOT_VW={dot_vw}", f"-DPK_TM={pk_tm}",
                f"-DPK_VW={pk_vw}")
        dev = self.device
        self._knl = {name: dev.kernel(KERNEL_FILE, name, opts) for name in _DIRECT}
        for knl in self._knl.values():
            knl.set_scalar_arg_dtypes(_DIRECT_DTYPES)
        self._epi = {name: dev.kernel(KERNEL_FILE, name, opts)
                     for name in ("gemm_nt_epi", "gemm_nt_epi_row")}
        for knl in self._epi.values():
            knl.set_scalar_arg_dtypes(_EPI_DTYPES)
        self._pack_a = dev.kernel(KERNEL_FILE, "gemm_pack_a", opts)
        self._pack_b = dev.kernel(KERNEL_FILE, "gemm_pack_b", opts)
        for knl in (self._pack_a, self._pack_b):
            knl.set_scalar_arg_dtypes(_PACK_DTYPES)
        self._packed = dev.kernel(KERNEL_FILE, "gemm_packed", opts)
        self._packed.set_scalar_arg_dtypes(_PACKED_DTYPES)
        self._panels: dict[str, cl.Buffer] = {}
        # None: choose per shape (see _use_packed); True / False force the packed / direct path
        # (tests cover both, benchmarks/gemm.py compares them).
        self.packing: bool | None = None

    def gemm(self, a_buf, b_buf, c_buf, m, n, k, trans_a=False, trans_b=False,
             accumulate=False, wait_for=None, batch=1, stride_a=None, stride_b=None,
             stride_c=None) -> cl.Event:
        """Enqueue ``C (m, n) = op(A) @ op(B)``, plus the old C when ``accumulate``.

        float32, row-major, contiguous (buffers may be sub-buffers). op(A) is (m, k): A is
        stored (m, k), or (k, m) when ``trans_a``; op(B) is (k, n): B is stored (k, n), or
        (n, k) when ``trans_b``. C must not overlap A or B. With ``batch`` > 1, matrix b of
        each operand starts ``stride_*`` floats after matrix b-1 (default: packed). Returns
        the event of the last command enqueued; nothing waits (the queue is in-order, so a
        later command sees the result).
        """
        m, n, k = _count(m, "m"), _count(n, "n"), _count(k, "k")
        batch = _count(batch, "batch")
        sa = m * k if stride_a is None else _count(stride_a, "stride_a", 2**62)
        sb = k * n if stride_b is None else _count(stride_b, "stride_b", 2**62)
        sc = m * n if stride_c is None else _count(stride_c, "stride_c", 2**62)
        queue = self.device.queue
        if m == 0 or n == 0 or batch == 0:
            return cl.enqueue_marker(queue, wait_for=wait_for)
        if batch > 1 and sc < m * n:
            raise ValueError(f"gemm: stride_c={sc} makes the {batch} outputs overlap; "
                             f"use stride_c >= m*n = {m * n}")
        for buf, name, stride, need in ((a_buf, "a_buf", sa, m * k), (b_buf, "b_buf", sb, k * n),
                                        (c_buf, "c_buf", sc, m * n)):
            nbytes = 4 * ((batch - 1) * stride + need)
            if need and buf.size < nbytes:
                raise ValueError(f"gemm: {name} holds {buf.size} bytes, needs {nbytes} for "
                                 f"batch={batch} m={m} n={n} k={k}")
        acc = 1 if accumulate else 0

        if k and ((trans_a and trans_b) or (self.packing if self.packing is not None
                                            else self._use_packed(m, n, k))):
            return self._run_packed(a_buf, b_buf, c_buf, m, n, k, trans_a, trans_b, acc,
                                    batch, sa, sb, sc, wait_for)
        if trans_b:  # nt: dot tiles
            name, (tm, tn) = "gemm_nt", self.dot_tile[:2]
        else:
            name, (tm, tn) = ("gemm_tn" if trans_a else "gemm_nn"), self.op_tile
        m_main = m - m % tm
        col_tiles = -(-n // tn)
        args = (m, n, k)
        tail = (a_buf, b_buf, c_buf, acc, sa, sb, sc)
        event = None
        if m_main:
            event = self._run(self._knl[name], (col_tiles, m_main // tm, batch),
                              (*args, 0, *tail), _DIRECT_DTYPES, wait_for)
        if m > m_main:
            event = self._run(self._knl[name + "_row"], (col_tiles, m - m_main, batch),
                              (*args, m_main, *tail), _DIRECT_DTYPES, wait_for)
        return event

    def rows(self, a_buf, b_buf, c_buf, row0, rows, n, k, trans_b=False,
             accumulate=False) -> cl.Event | None:
        """Enqueue rows ``row0 .. row0 + rows - 1`` of ``C = A @ op(B)`` (+ the old C when
        ``accumulate``): A is stored (row0 + rows, k) or longer, C (row0 + rows, n) or
        longer, both read and written at the same row indices; B as in :meth:`gemm` (stored
        (n, k) when ``trans_b``). Always the direct kernels, so every row gets the same
        arithmetic as a product of ``rows`` rows of its own (one step of a recurrence whose
        steps are row blocks of one buffer)."""
        row0, rows = _count(row0, "row0"), _count(rows, "rows")
        n, k = _count(n, "n"), _count(k, "k")
        m = row0 + rows
        for buf, name, need in ((a_buf, "a_buf", m * k), (b_buf, "b_buf", k * n),
                                (c_buf, "c_buf", m * n)):
            if need and buf.size < 4 * need:
                raise ValueError(f"gemm.rows: {name} holds {buf.size} bytes, needs {4 * need} "
                                 f"for rows {row0}..{m - 1} n={n} k={k}")
        if rows == 0 or n == 0:
            return None
        if trans_b:
            name, (tm, tn) = "gemm_nt", self.dot_tile[:2]
        else:
            name, (tm, tn) = "gemm_nn", self.op_tile
        main = rows - rows % tm
        col_tiles = -(-n // tn)
        tail = (a_buf, b_buf, c_buf, 1 if accumulate else 0, m * k, k * n, m * n)
        event = None
        if main:
            event = self._run(self._knl[name], (col_tiles, main // tm, 1),
                              (m, n, k, row0, *tail), _DIRECT_DTYPES)
        if rows > main:
            event = self._run(self._knl[name + "_row"], (col_tiles, rows - main, 1),
                              (m, n, k, row0 + main, *tail), _DIRECT_DTYPES)
        return event

    def dense(self, x_buf, w_buf, y_buf, m, n, k, bias_buf=None, act: int = 0,
              split: bool = False) -> cl.Event:
        """Enqueue a dense layer's forward ``Y (m, n) = act(X (m, k) @ W^T + bias)``: W stored
        (n, k), bias (n,) or None, ``act`` an activation code (kernels/common.h). One launch
        on the direct path (the product's epilogue adds the bias and applies ``act``); the
        packed path adds one element-wise launch (``bias_act_fwd``, 8 values per work-item,
        tanh 8-wide). ``split``: that second launch on the direct path too (the product
        without epilogue), the same values; it pays for tanh over a few rows or more, where
        the epilogue's one-at-a-time tanh costs more than a launch (ops.linear's training
        path)."""
        m, n, k = _count(m, "m"), _count(n, "n"), _count(k, "k")
        if m == 0 or n == 0:
            return cl.enqueue_marker(self.device.queue)
        for buf, name, need in ((x_buf, "x_buf", m * k), (w_buf, "w_buf", n * k),
                                (y_buf, "y_buf", m * n), (bias_buf, "bias_buf", n)):
            if buf is not None and need and buf.size < 4 * need:
                raise ValueError(f"gemm.dense: {name} holds {buf.size} bytes, needs {4 * need} "
                                 f"for m={m} n={n} k={k}")
        has_bias = int(bias_buf is not None)
        bias = bias_buf if bias_buf is not None else w_buf
        packed = k and (self.packing if self.packing is not None else self._use_packed(m, n, k))
        if packed or split:
            self.gemm(x_buf, w_buf, y_buf, m, n, k, trans_b=True)
            return launch(self.device, "elementwise.cl", "bias_act_fwd", -(-m * n // 8), y_buf,
                          bias, y_buf, i32(n), i32(has_bias), i32(act), i32(m * n))
        tm, tn = self.dot_tile[:2]
        m_main, col_tiles = m - m % tm, -(-n // tn)
        event = None
        for name, rows, row0 in (("gemm_nt_epi", m_main // tm, 0),
                                 ("gemm_nt_epi_row", m - m_main, m_main)):
            if rows:
                event = self._run(self._epi[name], (col_tiles, rows, 1),
                                  (m, n, k, row0, x_buf, w_buf, y_buf, bias, has_bias, act,
                                   m * k, n * k, m * n), _EPI_DTYPES)
        return event

    def _run(self, knl, gsize, args, dtypes, wait_for=None) -> cl.Event:
        """Enqueue one kernel (and show it to a recording plan, see neurofx.nn.plan)."""
        event = knl(self.device.queue, gsize, None, *args, wait_for=wait_for)
        if self.device.recorder is not None:
            self.device.recorder.launch(knl, gsize, None, args, dtypes=dtypes)
        return event

    @staticmethod
    def _use_packed(m, n, k) -> bool:
        """Packing pays from about 128 rows on (measured on the 2-core CPU with
        ``benchmarks/gemm.py --paths``; below, the copies cost more than they save)."""
        return m >= 128 and n >= 64 and k >= 64

    def _run_packed(self, a_buf, b_buf, c_buf, m, n, k, trans_a, trans_b, acc, batch, sa, sb,
                    sc, wait_for) -> cl.Event:
        """Copy op(A) and op(B) into zero-padded panels, then one tile per work-item."""
        tm, vw = self.pack_tile
        a_tiles, b_tiles = -(-m // tm), -(-n // vw)
        spa, spb = a_tiles * tm * k, b_tiles * vw * k  # floats per packed matrix
        pa, pb = self._panel("a", batch * spa), self._panel("b", batch * spb)
        # op(A)(i, p) = A[i*s_r + p*s_p]; op(B)(p, j) = B[j*s_r + p*s_p]
        a_str = (1, m) if trans_a else (k, 1)
        b_str = (k, 1) if trans_b else (1, n)
        self._run(self._pack_a, (k, a_tiles, batch), (m, k, a_buf, pa, *a_str, sa, spa),
                  _PACK_DTYPES, wait_for)
        self._run(self._pack_b, (k, b_tiles, batch), (n, k, b_buf, pb, *b_str, sb, spb),
                  _PACK_DTYPES, wait_for)
        return self._run(self._packed, (b_tiles, a_tiles, batch),
                         (m, n, k, pa, pb, c_buf, acc, spa, spb, sc), _PACKED_DTYPES)

    def _panel(self, which: str, floats: int) -> cl.Buffer:
        # One scratch per operand, grown on demand. Reuse is safe: the in-order queue runs each
        # product's reads of it before the next gemm's pack overwrites it.
        buf = self._panels.get(which)
        if buf is None or buf.size < 4 * floats:
            buf = self._panels[which] = self.device.alloc(4 * floats, kind="other",
                                                          owner=f"gemm.panels_{which}")
        return buf


_cache: weakref.WeakKeyDictionary[Device, Gemm] = weakref.WeakKeyDictionary()
_rows_cache: weakref.WeakKeyDictionary[Device, Gemm] = weakref.WeakKeyDictionary()


def get_gemm(device: Device | None = None) -> Gemm:
    """The cached :class:`Gemm` of ``device`` (the process's device by default)."""
    device = device or get_device()
    gemm = _cache.get(device)
    if gemm is None:
        gemm = _cache[device] = Gemm(device)
    return gemm


def get_rows_gemm(device: Device | None = None) -> Gemm:
    """The cached :class:`Gemm` of ``device`` with :data:`ROWS_DOT_TILE`, for the nt products
    of a few rows (:meth:`Gemm.rows` with ``trans_b``, one step of a recurrence). Its nt
    sums run 8-wide along k, :func:`get_gemm`'s 16-wide: the same product rounds
    differently."""
    device = device or get_device()
    gemm = _rows_cache.get(device)
    if gemm is None:
        gemm = _rows_cache[device] = Gemm(device, dot_tile=ROWS_DOT_TILE)
    return gemm
