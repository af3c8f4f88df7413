"""nn/gemm.py + kernels/matmul.cl against numpy float64, for odd sizes and all transposes.

Every operand is a sub-buffer at a non-zero aligned offset of a larger buffer whose other
floats are sentinels: NaN around A and B (an out-of-bounds read would put a NaN into C) and a
known bit pattern around C (an out-of-bounds write would change it). Without ``accumulate`` the
C region itself starts as NaN, so a kernel that read C there would return NaN. Reads just
past a matrix whose values a kernel would discard are caught by guard pages instead
(test_gemm_never_touches_guard_pages). Both paths (direct kernels, packed panels) are tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyopencl as cl
import pytest

from neurofx.nn.device import get_device
from neurofx.nn.gemm import DOT_TILE, OP_TILE, OP_TILE_NARROW, PACK_TILE, Gemm, get_gemm

SHAPES = [  # (m, n, k)
    (1, 1, 1),
    (3, 5, 7),
    (1, 1081, 3),
    (1081, 3, 1),
    (64, 1080, 256),
    (33, 65, 17),
    (17, 40, 1),  # k = 1
    (1, 256, 1080),  # batch-1 forward / backward shapes
    (9, 12, 20),  # n narrower than one OP_VW vector
    (PACK_TILE[0] + 1, OP_TILE[1] + 1, 16 + 1),  # one past tile boundaries
    (OP_TILE[0] * 3 - 1, OP_TILE[1] - 1, 16 - 1),
    (OP_TILE_NARROW[0] * 3 - 1, OP_TILE_NARROW[1] * 2 + 1, 16 + 1),  # the AVX2 tile's edges
    (OP_TILE_NARROW[0] * 2 + 1, OP_TILE_NARROW[1] - 1, 32),
    (DOT_TILE[0] * 3, DOT_TILE[1] * 5 + 2, 35),
]
TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]
RTOL = 1e-4  # relative to the largest sum of |A||B| products (float32 accumulation)
C_SENTINEL = np.array([0x7F7F1234], dtype=np.uint32).view(np.float32)[0]  # finite, distinctive


@pytest.fixture(scope="module")
def gemm() -> Gemm:
    return get_gemm(get_device())


@pytest.fixture(params=[False, True], ids=["direct", "packed"])
def path_gemm(request, gemm):
    """The cached Gemm forced onto the direct kernels or the packed path (tt is always packed)."""
    gemm.packing = request.param
    yield gemm
    gemm.packing = None


def _pad(dev) -> int:
    """Sentinel floats on each side: two base alignments, so the offset is non-zero."""
    return 2 * dev.base_align // 4


class Placed:
    """A host matrix copied into a sub-buffer of a larger device buffer full of sentinels."""

    def __init__(self, dev, data: np.ndarray, sentinel: float):
        self.dev = dev
        self.pad = _pad(dev)
        self.n = data.size
        host = np.full(self.pad * 2 + max(self.n, 1), sentinel, dtype=np.float32)
        host[self.pad:self.pad + self.n] = data.ravel()
        self.initial = host
        self.big = dev.to_device(host)
        self.sub = self.big.get_sub_region(4 * self.pad, 4 * max(self.n, 1))

    def read(self) -> np.ndarray:
        return self.dev.to_host(self.big, self.initial.shape)

    def inside(self, shape) -> np.ndarray:
        return self.read()[self.pad:self.pad + self.n].reshape(shape)

    def sentinels_intact(self) -> bool:
        now = self.read()
        keep = np.ones(now.size, dtype=bool)
        keep[self.pad:self.pad + self.n] = False
        return bool(np.array_equal(now[keep].view(np.uint32), self.initial[keep].view(np.uint32)))


def _operands(rng, m, n, k, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    op_a = (a.T if trans_a else a).astype(np.float64)
    op_b = (b.T if trans_b else b).astype(np.float64)
    return a, b, op_a, op_b


def _check(out, ref, bound):
    assert not np.isnan(out).any()
    err = np.abs(out.astype(np.float64) - ref).max(initial=0.0)
    assert err <= RTOL * max(bound, 1e-30), (err, bound)


@pytest.mark.parametrize("accumulate", [False, True], ids=["set", "acc"])
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["nn", "nt", "tn", "tt"])
@pytest.mark.parametrize("m,n,k", SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SHAPES])
def test_gemm_matches_numpy(path_gemm, m, n, k, trans_a, trans_b, accumulate):
    gemm = path_gemm
    dev = gemm.device
    rng = np.random.default_rng(m * 1_000_003 + n * 1009 + k)
    a, b, op_a, op_b = _operands(rng, m, n, k, trans_a, trans_b)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    pa, pb = Placed(dev, a, np.nan), Placed(dev, b, np.nan)
    pc = Placed(dev, c0 if accumulate else np.full((m, n), np.nan, np.float32), C_SENTINEL)

    event = gemm.gemm(pa.sub, pb.sub, pc.sub, m, n, k, trans_a=trans_a, trans_b=trans_b,
                      accumulate=accumulate)
    assert isinstance(event, cl.Event)
    event.wait()

    ref = op_a @ op_b + (c0.astype(np.float64) if accumulate else 0.0)
    bound = (np.abs(op_a) @ np.abs(op_b)).max() + (np.abs(c0).max() if accumulate else 0.0)
    _check(pc.inside((m, n)), ref, bound)
    assert pc.sentinels_intact(), "gemm wrote outside C"
    assert pa.sentinels_intact() and pb.sentinels_intact(), "gemm wrote into an input"


@pytest.mark.parametrize("op_tile,dot_tile,pack_tile", [((3, 4), (2, 3, 4), (5, 2)),
                                                         ((1, 1), (1, 1, 1), (1, 1)),
                                                         ((5, 8), (3, 2, 8), (3, 8))])
@pytest.mark.parametrize("packing", [False, True], ids=["direct", "packed"])
def test_gemm_other_tiles(op_tile, dot_tile, pack_tile, packing):
    """Tile sizes are build options (e.g. for a GPU); odd tiles stay exact and in bounds."""
    gemm = Gemm(get_device(), op_tile=op_tile, dot_tile=dot_tile, pack_tile=pack_tile)
    gemm.packing = packing
    dev = gemm.device
    rng = np.random.default_rng(sum(op_tile) * 31 + sum(dot_tile))
    for m, n, k in [(1, 1, 1), (7, 9, 11), (10, 13, 33), (4, 24, 16)]:
        for trans_a, trans_b in TRANSPOSES:
            a, b, op_a, op_b = _operands(rng, m, n, k, trans_a, trans_b)
            c0 = rng.standard_normal((m, n)).astype(np.float32)
            pa, pb, pc = Placed(dev, a, np.nan), Placed(dev, b, np.nan), Placed(dev, c0, C_SENTINEL)
            gemm.gemm(pa.sub, pb.sub, pc.sub, m, n, k, trans_a=trans_a, trans_b=trans_b,
                      accumulate=True).wait()
            bound = (np.abs(op_a) @ np.abs(op_b)).max() + np.abs(c0).max()
            _check(pc.inside((m, n)), op_a @ op_b + c0, bound)
            assert pc.sentinels_intact()


def test_gemm_op_tiles_give_the_same_bits():
    """The outer-product tile is a speed choice only (OP_TILE on 16-wide devices,
    OP_TILE_NARROW on AVX2): every entry of C sums along k in order whatever the tile, so the
    direct nn / tn products are bit-identical across tiles, remainders included."""
    dev = get_device()
    gemms = [Gemm(dev, op_tile=t) for t in (OP_TILE, OP_TILE_NARROW, (3, 4))]
    for g in gemms:
        g.packing = False
    rng = np.random.default_rng(11)
    for m, n, k in [(32, 256, 216), (256, 1080, 32), (23, 17, 9), (1, 5, 3)]:
        for trans_a in (False, True):
            a, b, _, _ = _operands(rng, m, n, k, trans_a, False)
            c0 = rng.standard_normal((m, n)).astype(np.float32)
            outs = []
            for g in gemms:
                ab, bb, cb = dev.to_device(a), dev.to_device(b), dev.to_device(c0)
                g.gemm(ab, bb, cb, m, n, k, trans_a=trans_a, accumulate=True).wait()
                outs.append(dev.to_host(cb, (m, n)))
            for out in outs[1:]:
                assert np.array_equal(out.view(np.uint32), outs[0].view(np.uint32)), (m, n, k)


def test_gemm_default_op_tile_follows_vector_width():
    gemm = get_gemm(get_device())
    wide = gemm.device.cl_device.native_vector_width_float >= 16
    assert gemm.op_tile == (OP_TILE if wide else OP_TILE_NARROW)


def test_gemm_rejects_bad_tiles():
    with pytest.raises(ValueError, match=r"vector widths one of \(1, 2, 4, 8, 16\)"):
        Gemm(get_device(), op_tile=(8, 3))


@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["nn", "nt", "tn", "tt"])
def test_gemm_batched_with_gaps(path_gemm, trans_a, trans_b):
    """batch > 1 with strides wider than one matrix; the gaps hold sentinels too."""
    gemm = path_gemm
    dev = gemm.device
    batch, m, n, k = 3, 13, 21, 19
    gap_a, gap_b, gap_c = 5, 3, 7
    rng = np.random.default_rng(7)
    mats = [_operands(rng, m, n, k, trans_a, trans_b) for _ in range(batch)]
    c0 = rng.standard_normal((batch, m, n)).astype(np.float32)

    def stack(arrays, gap, fill):
        rows = [np.concatenate([x.ravel(), np.full(gap, fill, np.float32)]) for x in arrays]
        return np.concatenate(rows)[:-gap]

    pa = Placed(dev, stack([x[0] for x in mats], gap_a, np.nan), np.nan)
    pb = Placed(dev, stack([x[1] for x in mats], gap_b, np.nan), np.nan)
    pc = Placed(dev, stack(list(c0), gap_c, C_SENTINEL), C_SENTINEL)
    gemm.gemm(pa.sub, pb.sub, pc.sub, m, n, k, trans_a=trans_a, trans_b=trans_b,
              accumulate=True, batch=batch, stride_a=m * k + gap_a, stride_b=k * n + gap_b,
              stride_c=m * n + gap_c).wait()

    flat = pc.inside((pc.n,))
    assert pc.sentinels_intact()
    for i, (_, _, op_a, op_b) in enumerate(mats):
        start = i * (m * n + gap_c)
        out = flat[start:start + m * n].reshape(m, n)
        bound = (np.abs(op_a) @ np.abs(op_b)).max() + np.abs(c0[i]).max()
        _check(out, op_a @ op_b + c0[i], bound)
        if i < batch - 1:  # the gap after this output is untouched
            gap = flat[start + m * n:start + m * n + gap_c]
            assert np.array_equal(gap.view(np.uint32), np.full(gap_c, C_SENTINEL).view(np.uint32))


def test_gemm_k0_sets_zero_or_keeps_c(gemm):
    dev = gemm.device
    m, n = 5, 18
    c0 = np.arange(m * n, dtype=np.float32).reshape(m, n)
    dummy = dev.zeros(1)
    for trans_b in (False, True):
        pc = Placed(dev, c0, C_SENTINEL)
        gemm.gemm(dummy, dummy, pc.sub, m, n, 0, trans_b=trans_b).wait()
        assert np.array_equal(pc.inside((m, n)), np.zeros((m, n), np.float32))
        pc = Placed(dev, c0, C_SENTINEL)
        gemm.gemm(dummy, dummy, pc.sub, m, n, 0, trans_b=trans_b, accumulate=True).wait()
        assert np.array_equal(pc.inside((m, n)), c0)


def test_gemm_chained_without_host_wait(gemm):
    """(A @ B) @ D through wait_for and the in-order queue, one wait at the end."""
    dev = gemm.device
    rng = np.random.default_rng(3)
    a = rng.standard_normal((37, 29)).astype(np.float32)
    b = rng.standard_normal((29, 23)).astype(np.float32)
    d = rng.standard_normal((23, 11)).astype(np.float32)
    a_buf, b_buf, d_buf = dev.to_device(a), dev.to_device(b), dev.to_device(d)
    ab_buf, out_buf = dev.alloc(4 * 37 * 23), dev.alloc(4 * 37 * 11)
    ev = gemm.gemm(a_buf, b_buf, ab_buf, 37, 23, 29)
    gemm.gemm(ab_buf, d_buf, out_buf, 37, 11, 23, wait_for=[ev]).wait()
    ref = a.astype(np.float64) @ b @ d
    bound = (np.abs(a) @ np.abs(b) @ np.abs(d)).max()
    _check(dev.to_host(out_buf, (37, 11)), ref, bound)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"m": -1}, r"m must be an integer in \[0, 2147483647\], got -1"),
        ({"k": 2.5}, r"k must be an integer in"),
        ({"n": 2**31}, r"n must be an integer in"),
        ({"n": 9}, r"b_buf holds 128 bytes, needs 144"),
        ({"batch": 2, "stride_c": 10}, r"stride_c=10 makes the 2 outputs overlap"),
    ],
)
def test_gemm_rejects_bad_arguments(gemm, kwargs, message):
    dev = gemm.device
    args = {"m": 4, "n": 8, "k": 4}
    args.update(kwargs)
    big = dev.zeros(256)
    small = dev.zeros(32)  # 128 bytes: B of (4, 8) fits, (4, 9) does not
    with pytest.raises(ValueError, match=message):
        gemm.gemm(big, small, big, **args)


def test_get_gemm_is_cached(gemm):
    assert get_gemm(gemm.device) is gemm
    assert get_gemm() is get_gemm(get_device())


# Child process for the guard-page test: each operand lives in host memory that starts right
# after, or ends right before, a PROT_NONE page, wrapped with USE_HOST_PTR (PoCL's CPU device
# then works on that memory directly), so any access just outside a matrix is a segfault.
_GUARD_CHILD = r"""
import ctypes, json, mmap, sys
import numpy as np, pyopencl as cl
from neurofx.nn.device import get_device
from neurofx.nn.gemm import get_gemm

PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
keep = []

def guarded(data, at_end):
    nbytes = data.nbytes
    pages = -(-nbytes // PAGE)
    mm = mmap.mmap(-1, (pages + 2) * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    for page in (0, pages + 1):
        if libc.mprotect(base + page * PAGE, PAGE, 0) != 0:
            sys.exit("mprotect failed")
    start = (pages + 1) * PAGE - nbytes if at_end else PAGE
    arr = np.frombuffer(mm, dtype=np.float32, count=data.size, offset=start)
    arr[:] = data.ravel()
    keep.append(mm)
    return cl.Buffer(dev.context, cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR,
                     hostbuf=arr), arr

dev = get_device()
gemm = get_gemm(dev)
rng = np.random.default_rng(5)
for batch, m, n, k, ta, tb, acc, at_end, packing in json.loads(sys.argv[1]):
    print("case", batch, m, n, k, ta, tb, acc, at_end, packing, flush=True)
    gemm.packing = packing
    a = rng.standard_normal((batch,) + ((k, m) if ta else (m, k))).astype(np.float32)
    b = rng.standard_normal((batch,) + ((n, k) if tb else (k, n))).astype(np.float32)
    c0 = rng.standard_normal((batch, m, n)).astype(np.float32)
    (a_buf, _), (b_buf, _) = guarded(a, at_end), guarded(b, at_end)
    c_buf, c_host = guarded(c0, at_end)
    gemm.gemm(a_buf, b_buf, c_buf, m, n, k, trans_a=ta, trans_b=tb, accumulate=acc,
              batch=batch).wait()
    out = np.empty_like(c0)
    cl.enqueue_copy(dev.queue, out, c_buf, is_blocking=True)
    op_a = np.swapaxes(a, 1, 2) if ta else a
    op_b = np.swapaxes(b, 1, 2) if tb else b
    ref = op_a.astype(np.float64) @ op_b + (c0 if acc else 0.0)
    bound = (np.abs(op_a) @ np.abs(op_b)).max() + (np.abs(c0).max() if acc else 0.0)
    if not np.abs(out - ref).max() <= 1e-4 * bound:
        sys.exit(f"wrong result {np.abs(out - ref).max()} > 1e-4 * {bound}")
print("done", flush=True)
"""
GUARD_SHAPES = [(1, 1, 1), (3, 5, 7), (1, 1081, 3), (1081, 3, 1), (33, 65, 17), (9, 12, 20),
                (17, 17, 17), (7, 15, 15), (13, 22, 35)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs mmap + mprotect")
def test_gemm_never_touches_guard_pages():
    cases = [(1, m, n, k, ta, tb, acc, at_end, packing)
             for m, n, k in GUARD_SHAPES for ta, tb in TRANSPOSES
             for acc, at_end in ((False, True), (True, False)) for packing in (False, True)]
    cases += [(3, 7, 19, 9, ta, tb, True, True, packing)
              for ta, tb in TRANSPOSES for packing in (False, True)]
    proc = subprocess.run([sys.executable, "-c", _GUARD_CHILD, json.dumps(cases)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("case")][-1:]
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("done"), (
        f"rc={proc.returncode} at {last}: {proc.stderr[-500:]}")
