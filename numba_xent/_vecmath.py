"""Scalar and block helpers that LLVM turns into SIMD code.

Numba's pip build of llvmlite has no SVML, so ``math.exp`` in a loop stays a scalar libm call. ``exp_nonpositive``
is emitted directly as LLVM IR by an intrinsic: round-to-nearest by the "magic number" trick (the integer n lands
in the low mantissa bits, so 2**n is one shift of those bits), a two-constant Cody-Waite reduction with explicit
``llvm.fma``, a Horner polynomial, and a select for underflow. Once inlined into a loop it vectorises (checked with
``inspect_asm``: packed ``vfmadd``/``vpslld``, no ``call``, no gather).

Floating-point flags are per instruction. The exp's instructions carry only ``afn`` (which means nothing for
add/mul/cmp): Numba's fastmath pass only flags instructions that have no flags, so a caller compiled with
``reassoc`` cannot fold ``(t + magic) - magic`` away. Only accumulating loops allow ``reassoc``/``contract`` (a sum
needs it to vectorise). Results are deterministic: the order is fixed by the compiled code, never by thread count.

Loops index from 0 over slices (``row[start:stop]``), never ``range(start, stop)`` over the whole row: Numba's
negative-index wraparound on an index LLVM cannot prove non-negative turns every load into a gather.

Functions that hold a loop meant to vectorise call ``prefer_wide_vectors()``; helpers are plain ``@jit`` functions
(LLVM inlines the small ones), and the helpers whose code depends on the argument's type are ``@intrinsic``.
"""

from typing import NamedTuple

import llvmlite.binding as ll
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import JIT_OPTIONS, jit

EXACT = JIT_OPTIONS  # the package's Numba options, for modules that compile kernels of their own

_FLOAT_TYPES = {types.float32: (ir.FloatType(), ir.IntType(32)), types.float64: (ir.DoubleType(), ir.IntType(64))}
_INT_TYPES = {types.int32: (types.float32, ir.FloatType()), types.int64: (types.float64, ir.DoubleType())}
_INT_OF_FLOAT = {types.float32: types.int32, types.float64: types.int64}


@intrinsic
def _float_from_bits(typingctx, bits):
    """Reinterpret int32/int64 bits as float32/float64 (an LLVM bitcast: free, and fine inside SIMD code)."""
    if bits not in _INT_TYPES:
        return None
    result_type, llvm_type = _INT_TYPES[bits]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_type)

    return result_type(bits), codegen


@intrinsic
def _bits_of_float(typingctx, x):
    """The bits of a float32/float64 as int32/int64 (an LLVM bitcast)."""
    if x not in _FLOAT_TYPES:
        return None
    int_llvm_type = _FLOAT_TYPES[x][1]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], int_llvm_type)

    return _INT_OF_FLOAT[x](x), codegen


@intrinsic
def order_key(typingctx, x):
    """A float's bits as a signed integer of the same width that sorts like the float: ``key(a) < key(b)`` iff
    ``a < b`` for non-NaN values; a positive NaN sorts above +inf. An integer max vectorises where a float max does
    not (LLVM needs ``nnan`` to vectorise a float max reduction, and we do not promise no NaNs). The map is its own
    inverse: ``from_order_key(order_key(x)) == x``.
    """
    if x not in _FLOAT_TYPES:
        return None
    int_llvm_type = _FLOAT_TYPES[x][1]

    def codegen(context, builder, signature, args):
        bits = builder.bitcast(args[0], int_llvm_type)
        sign_fill = builder.ashr(bits, ir.Constant(int_llvm_type, int_llvm_type.width - 1))
        magnitude_mask = ir.Constant(int_llvm_type, (1 << (int_llvm_type.width - 1)) - 1)
        return builder.xor(bits, builder.and_(sign_fill, magnitude_mask))

    return _INT_OF_FLOAT[x](x), codegen


@intrinsic
def from_order_key(typingctx, key):
    """The float whose ``order_key`` is ``key`` (int32 -> float32, int64 -> float64)."""
    if key not in _INT_TYPES:
        return None
    result_type, float_llvm_type = _INT_TYPES[key]

    def codegen(context, builder, signature, args):
        (bits,) = args
        sign_fill = builder.ashr(bits, ir.Constant(bits.type, bits.type.width - 1))
        magnitude_mask = ir.Constant(bits.type, (1 << (bits.type.width - 1)) - 1)
        return builder.bitcast(builder.xor(bits, builder.and_(sign_fill, magnitude_mask)), float_llvm_type)

    return result_type(key), codegen


def _host_has_avx512():
    try:
        return bool(ll.get_host_cpu_features().get("avx512f", False))
    except RuntimeError:
        return False


_PREFER_512 = _host_has_avx512()


@intrinsic
def prefer_wide_vectors(typingctx):
    """Ask LLVM to vectorise the calling function's loops with 512-bit registers (a no-op without AVX-512).

    LLVM picks 256-bit vectors on Intel AVX-512 CPUs by default ("prefer-256-bit" tuning); the per-function
    attribute ``"prefer-vector-width"="512"`` (what clang's ``-mprefer-vector-width=512`` sets) overrides it for this
    function only. llvmlite validates only a fixed list of attribute names, so the string attribute is added to the
    underlying set; if llvmlite ever changes that representation this silently falls back to 256-bit code.
    """

    def codegen(context, builder, signature, args):
        attributes = builder.function.attributes
        if _PREFER_512 and isinstance(attributes, set):
            set.add(attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


class ExpConstants(NamedTuple):
    """Constants of ``exp_nonpositive`` for one float type."""

    magic: float  # 1.5 * 2**mantissa_bits + exponent bias: adding it rounds to an integer kept in the low bits
    mantissa_bits: int
    log2e: float
    ln2_hi: float  # ln 2 split in two (Cody-Waite) so that n * ln2_hi is exact
    ln2_lo: float
    underflow_below: float  # exp(x) for x below this is returned as 0
    coefficients: tuple[float, ...]  # c_k of exp(r) ~ 1 + c_1 r + ... on |r| <= ln2/2, highest degree first


_EXP_CONSTANTS = {
    # Degree-6 near-minimax fit (relative error 2e-9 before rounding, 7e-8 evaluated in float32); Cephes' ln2 split.
    types.float32: ExpConstants(
        magic=12582912.0 + 127.0,
        mantissa_bits=23,
        log2e=1.4426950408889634,
        ln2_hi=0.693359375,
        ln2_lo=-2.12194440e-4,
        underflow_below=-87.0,  # exp(-87) < 2e-38
        coefficients=(
            0.0013843596680089831,
            0.008374195545911789,
            0.04166800528764725,
            0.16666430234909058,
            0.4999999403953552,
            1.0,
        ),
    ),
    # Degree-10 near-minimax fit (mpmath.chebyfit on [-ln2/2, ln2/2]: 2.2e-16 relative, 4.7e-16 evaluated in
    # float64; the degree-11 Taylor polynomial it replaced: 7e-15, one FMA more); fdlibm's ln2 split.
    types.float64: ExpConstants(
        magic=6755399441055744.0 + 1023.0,
        mantissa_bits=52,
        log2e=1.4426950408889634,
        ln2_hi=6.93147180369123816490e-01,
        ln2_lo=1.90821492927058770002e-10,
        underflow_below=-708.0,  # exp(-708) < 3e-308
        coefficients=(
            2.7626357241447223e-07,
            2.764018079620985e-06,
            2.4801504346997686e-05,
            0.00019841170270440067,
            0.0013888888932488599,
            0.008333333385667782,
            0.04166666666657314,
            0.16666666666554406,
            0.5000000000000006,
            1.0000000000000067,
        ),
    ),
}
_NO_FOLD = ("afn",)  # a flag that changes nothing for fadd/fmul/fcmp but stops Numba's fastmath pass adding reassoc


def _emit_exp(builder, constants, float_t, int_t, value, correction=None):
    """LLVM IR of exp(value + correction) (``correction``: a tiny term added after the range reduction, or None)."""

    def const(c):
        return ir.Constant(float_t, c)

    # t = x*log2(e) + magic rounds x*log2(e) to the nearest integer n, stored in t's low mantissa bits.
    t = builder.fma(value, const(constants.log2e), const(constants.magic))
    n = builder.fsub(t, const(constants.magic), flags=_NO_FOLD)
    r = builder.fma(n, const(-constants.ln2_hi), value)
    r = builder.fma(n, const(-constants.ln2_lo), r)
    if correction is not None:
        r = builder.fadd(r, correction, flags=_NO_FOLD)
    poly = const(constants.coefficients[0])
    for c in constants.coefficients[1:]:
        poly = builder.fma(poly, r, const(c))
    poly = builder.fma(poly, r, const(1.0))
    # (bias + n) << mantissa_bits is the bit pattern of 2**n (magic's own high bits shift out).
    power = builder.shl(builder.bitcast(t, int_t), ir.Constant(int_t, constants.mantissa_bits))
    result = builder.fmul(poly, builder.bitcast(power, float_t), flags=_NO_FOLD)
    # x < lowest is false for NaN, so NaN propagates through the polynomial; -inf and tiny values give 0.
    underflow = builder.fcmp_ordered("<", value, const(constants.underflow_below), flags=_NO_FOLD)
    return builder.select(underflow, const(0.0), result)


@intrinsic
def exp_nonpositive(typingctx, x):
    """exp(x) for x <= 0, as softmax needs once the row max is subtracted. NaN gives NaN, -inf gives 0.

    float32: relative error below 1.2e-7 on [-87, 0] (and up to x = 80); below -87 it returns 0 (absolute error
    < 2e-38). float64: relative error below 1e-15 on [-708, 0]; below -708 it returns 0 (absolute error
    < 3e-308). Straight-line LLVM IR (no call), so loops of it vectorise; the same bits whatever the caller's
    fastmath flags. Callable from ``@jit`` code only.
    """
    if x not in _EXP_CONSTANTS:
        return None
    constants = _EXP_CONSTANTS[x]
    float_t, int_t = _FLOAT_TYPES[x]

    def codegen(context, builder, signature, args):
        return _emit_exp(builder, constants, float_t, int_t, args[0])

    return x(x), codegen


@intrinsic
def exp_difference(typingctx, x, shift):
    """exp(x - shift) for x <= shift, with the rounding error of x - shift kept (``exp_nonpositive`` otherwise).

    x - shift rounds to within half an ulp of itself: at a difference of 40, 2e-6 relative in float32, which exp
    passes on whole. The error is recovered exactly (Knuth's TwoSum, six flops) and added after the range reduction,
    so the result keeps exp's own accuracy for any difference. Used where the shift is a block's max, far from most
    rows' own maxes.
    """
    if x not in _EXP_CONSTANTS or shift != x:
        return None
    constants = _EXP_CONSTANTS[x]
    float_t, int_t = _FLOAT_TYPES[x]

    def codegen(context, builder, signature, args):
        a, shift_value = args
        b = builder.fneg(shift_value, flags=_NO_FOLD)
        total = builder.fadd(a, b, flags=_NO_FOLD)
        a_part = builder.fsub(total, b, flags=_NO_FOLD)
        b_part = builder.fsub(total, a_part, flags=_NO_FOLD)
        a_error = builder.fsub(a, a_part, flags=_NO_FOLD)
        b_error = builder.fsub(b, b_part, flags=_NO_FOLD)
        error = builder.fadd(a_error, b_error, flags=_NO_FOLD)
        return _emit_exp(builder, constants, float_t, int_t, total, error)

    return x(x, shift), codegen


@jit
def block_max(row, start, stop):
    """Max of ``row[start:stop]`` (non-empty), through ``order_key`` so that the loop vectorises.

    A positive NaN wins (the row's result is NaN); a negative NaN loses here but still poisons the sum of
    exponentials.
    """
    prefer_wide_vectors()
    block = row[start:stop]
    best = order_key(block[0])
    for j in range(1, block.shape[0]):
        key = order_key(block[j])
        best = key if key > best else best  # not max(): it widens int32 to int64
    return from_order_key(best)


@jit
def exp_shifted(values, shift, out):
    """out[j] = exp(values[j] - shift) for a ``shift`` >= every value (1-D arrays of one dtype), to exp's accuracy
    however far below the shift the values lie (``exp_difference``)."""
    prefer_wide_vectors()
    for j in range(values.shape[0]):
        out[j] = exp_difference(values[j], shift)


@jit(reassoc=True)
def segment_sums(values, length, out):
    """out[i] = sum(values[i * length : (i + 1) * length]) in the values' dtype, for i < out.shape[0].

    Each segment is a contiguous sum that LLVM vectorises (with ``reassoc``): for short rows (10 to 128 classes)
    measured 2-4x faster than the same sums through a transposed tile (gather loads).
    """
    prefer_wide_vectors()
    for i in range(out.shape[0]):
        segment = values[i * length : (i + 1) * length]
        total = values.dtype.type(0.0)
        for j in range(segment.shape[0]):
            total += segment[j]
        out[i] = total


@jit(reassoc=True)
def block_sum_exp(row, start, stop, shift):
    """sum(exp(row[start:stop] - shift)) with every term <= 1, accumulated in the row's dtype.

    Callers keep blocks short (a few thousand elements) and add the block sums in float64.
    """
    prefer_wide_vectors()
    block = row[start:stop]
    total = row.dtype.type(0.0)  # not row[start] - row[start]: that is NaN when the row starts with -inf
    for j in range(block.shape[0]):
        total += exp_nonpositive(block[j] - shift)
    return np.float64(total)


@jit(reassoc=True)
def block_sum_exp_into(row, start, stop, shift, exps):
    """``block_sum_exp``, also writing each term to exps[start:stop] unless ``exps`` is None (it may be ``row``)."""
    if exps is None:
        return block_sum_exp(row, start, stop, shift)
    prefer_wide_vectors()
    terms = exps[start:stop]
    total = row.dtype.type(0.0)
    if exps.ctypes.data == row.ctypes.data:
        # In place through one array: with two, LLVM's overlap check fails and it runs the scalar loop.
        for j in range(terms.shape[0]):
            term = exp_nonpositive(terms[j] - shift)
            terms[j] = term
            total += term
    else:
        block = row[start:stop]
        for j in range(block.shape[0]):
            term = exp_nonpositive(block[j] - shift)
            terms[j] = term
            total += term
    return np.float64(total)


@jit(reassoc=True)
def block_sum_exp_apart(row, start, stop, shift, exps):
    """(sum of exp(row[start:stop] - shift) over the terms that are not exactly 1, how many are 1), in float64; the
    terms are read from exps[start:stop] when ``exps`` is not None (written there by ``block_sum_exp_into``).

    ``block_sum_exp`` adds the max's exp(0) = 1 into the same float32 accumulators as the other terms; when those are
    all tiny (a confident row), the 1 rounds them away, and the row's loss is about their sum. Added apart from the
    1s, they keep their relative accuracy. About 20% more arithmetic than ``block_sum_exp``: used only on the block
    that holds a confident row's max.
    """
    prefer_wide_vectors()
    zero = row.dtype.type(0.0)
    one = row.dtype.type(1.0)
    others = zero
    ones = zero  # exact: blocks are far shorter than 2**24
    if exps is None:
        block = row[start:stop]
        for j in range(block.shape[0]):
            others, ones = _add_apart_from_ones(exp_nonpositive(block[j] - shift), others, ones, zero, one)
    else:
        stored = exps[start:stop]
        for j in range(stored.shape[0]):
            others, ones = _add_apart_from_ones(stored[j], others, ones, zero, one)
    return np.float64(others), np.float64(ones)


@jit
def _add_apart_from_ones(term, others, ones, zero, one):
    """(others + term, ones), or (others, ones + 1) when the term is exactly 1. NaN terms (NaN or -inf - -inf) are
    not, and poison the sum as they should."""
    is_one = term == one
    return others + (zero if is_one else term), ones + (one if is_one else zero)


# Elements per block of the online softmax: 8 KiB of float32, so the block is still in L1 when it is read the
# second time (for its exponentials) right after its max.
ONLINE_BLOCK = 2048
# A row whose sum of exponentials is below this is "confident": its other terms may have been rounded away against
# the max's 1 (at most a few 1e-7 of it), which matters for a loss below log(1.25). Its max's block is added again,
# apart from the 1s.
CONFIDENT_SUM = 1.25


@jit
def row_softmax_stats(row):
    """Online softmax statistics of one row in one pass over its memory: (max, sum(exp(row - max)) - 1).

    The row is walked in L1-sized blocks: each block's max, then its exponentials while it is still in cache;
    the running sum is rescaled when the running max grows. While a block's exponentials are computed (compute
    bound), the next block is prefetched (its max is memory bound), so the two overlap. The sum minus one (float64)
    keeps a confident row's small terms (see ``block_sum_exp_apart``): ``log1p`` of it is the row's log-sum-exp minus
    its max, to a few ulp even when that is 1e-30. The max has the row's dtype.
    """
    return row_softmax_stats_into(row, None, None)


@jit
def row_softmax_stats_into(row, exps, block_shifts):
    """``row_softmax_stats``, also keeping the exponentials unless ``exps`` is None: block b of ONLINE_BLOCK
    elements gets exps[j] = exp(row[j] - block_shifts[b]), the running max it was summed against. ``exps`` may be
    ``row`` (in place). A gradient then needs only a rescale of each block (``rescale_exps_row``), not a second exp.
    """
    prefer_wide_vectors()
    n = row.shape[0]
    block_bytes = ONLINE_BLOCK * row.itemsize
    max_start = np.intp(0)  # not 0: a literal compiles a specialisation of its own (see _jit)
    row_max = row.dtype.type(0.0)
    max_block_sum = 0.0
    rest = 0.0  # the blocks other than the max's, scaled to the running max (kept apart: see the end)
    # One call site per helper (each inlines a vectorised loop, two with ``exps``): half the code to compile.
    for start in range(0, n, ONLINE_BLOCK):
        stop = min(n, start + ONLINE_BLOCK)
        new_max = block_max(row, start, stop)
        prefetch_range(row, stop * row.itemsize, block_bytes)
        holds_max = start == 0 or new_max > row_max
        if holds_max:
            if start > 0:
                rest = (rest + max_block_sum) * np.float64(exp_nonpositive(row_max - new_max))
            row_max = new_max
            max_start = start
        block_sum = block_sum_exp_into(row, start, stop, row_max, exps)
        if holds_max:
            max_block_sum = block_sum
        else:
            rest += block_sum
        if exps is not None:
            block_shifts[start // ONLINE_BLOCK] = row_max
    total = rest + max_block_sum
    if total < CONFIDENT_SUM:
        others, ones = block_sum_exp_apart(row, max_start, min(n, max_start + ONLINE_BLOCK), row_max, exps)
        return row_max, rest + others + (ones - 1.0)
    return row_max, total - 1.0


@jit
def row_max_sum_exp(row):
    """(max, sum(exp(row - max))) of one row, from ``row_softmax_stats``."""
    row_max, sum_minus_one = row_softmax_stats(row)
    return row_max, 1.0 + sum_minus_one


# ---------------------------------------------------------------------------------------------------------------
# Short rows (few classes): SIMD across rows instead of along them.

# Rows per transposed tile. Each SIMD lane is one row; 64 lanes = four 512-bit float32 vectors. The lane loops
# take their length from the scratch arrays' shape (not this constant): with a constant trip count LLVM unrolls them
# fully before the loop vectoriser runs, and Numba runs no SLP vectoriser, so they would stay scalar.
TILE_ROWS = 64


@jit
def _load_tile(block, r0, tile):
    """tile[c, r] = block[r0 + r, c]; lanes past the block's last row are set to zero. Returns the row count."""
    n_rows, n_classes = block.shape
    lanes = tile.shape[1]
    rows = min(lanes, n_rows - r0)
    if rows == lanes:
        # Full tile: strided column reads vectorise as gathers, faster than the scalar transpose below.
        base = block[r0 : r0 + lanes].reshape(-1)
        for c in range(n_classes):
            dst = tile[c]
            column = base[c:]
            for r in range(lanes):
                dst[r] = column[r * n_classes]
        return rows
    for r in range(rows):
        src = block[r0 + r]
        for c in range(n_classes):
            tile[c, r] = src[c]
    for c in range(n_classes):
        dst = tile[c]
        for r in range(rows, lanes):
            dst[r] = 0.0
    return rows


@jit
def rows_softmax_stats(block, out_max, out_sum_minus_one):
    """Softmax statistics of every row of a short-row block, vectorised across rows.

    block: (R, C) C-contiguous float32/float64 (any R >= 0, C >= 1). Writes out_max[r] = max(block[r]) (row dtype,
    NaN if the row has a positive NaN) and out_sum_minus_one[r] = sum_c exp(block[r, c] - out_max[r]) - 1 (float64;
    the terms are added in class order in the row dtype, the 1s apart as in ``block_sum_exp``). Rows go TILE_ROWS at
    a time through a transposed scratch tile, so each SIMD lane is one row. Same NaN/inf semantics as
    ``row_softmax_stats``.
    """
    prefer_wide_vectors()
    n_rows, n_classes = block.shape
    zero = block.dtype.type(0.0)
    one = block.dtype.type(1.0)
    tile = np.empty((n_classes, TILE_ROWS), block.dtype)
    best = np.empty(TILE_ROWS, block.dtype).view(_key_dtype(block))
    lane_max = np.empty(TILE_ROWS, block.dtype)
    lane_others = np.empty(TILE_ROWS, block.dtype)
    lane_ones = np.empty(TILE_ROWS, block.dtype)
    lanes = best.shape[0]
    for r0 in range(0, n_rows, lanes):
        rows = _load_tile(block, r0, tile)
        values = tile[0]
        for r in range(lanes):
            best[r] = order_key(values[r])
        for c in range(1, n_classes):
            values = tile[c]
            for r in range(lanes):
                key = order_key(values[r])
                best[r] = key if key > best[r] else best[r]
        for r in range(lanes):
            lane_max[r] = from_order_key(best[r])
            lane_others[r] = zero
            lane_ones[r] = zero
        for c in range(n_classes):
            values = tile[c]
            for r in range(lanes):
                term = exp_nonpositive(values[r] - lane_max[r])
                is_one = term == one
                lane_others[r] += zero if is_one else term
                lane_ones[r] += one if is_one else zero
        for r in range(rows):
            out_max[r0 + r] = lane_max[r]
            out_sum_minus_one[r0 + r] = (np.float64(lane_ones[r]) - 1.0) + np.float64(lane_others[r])


@intrinsic
def _key_dtype(typingctx, array):
    """The NumPy integer dtype of ``order_key`` keys for ``array``'s float dtype (a compile-time constant)."""
    if not isinstance(array, types.Array) or array.dtype not in _INT_OF_FLOAT:
        return None
    key_dtype = types.DType(_INT_OF_FLOAT[array.dtype])

    def codegen(context, builder, signature, args):
        return context.get_dummy_value()

    return key_dtype(array), codegen


@jit
def log_positive(x):
    """log(x) of a positive normal float64, as straight-line code that vectorises across a loop (math.log stays
    a libm call per element). x = 2**e * m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(u), u = (m-1)/(m+1),
    |u| < 0.172: ten odd terms reach 1e-17. Not for 0, inf, NaN or subnormals.
    """
    bits = _bits_of_float(x)
    exponent = ((bits >> 52) & 0x7FF) - 1023
    mantissa = _float_from_bits((bits & np.int64(0x000FFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000))
    big = mantissa > 1.4142135623730951
    mantissa = mantissa * 0.5 if big else mantissa
    exponent = exponent + 1 if big else exponent
    u = (mantissa - 1.0) / (mantissa + 1.0)
    u2 = u * u
    series = 1.0 / 21.0
    for k in range(19, 0, -2):
        series = series * u2 + 1.0 / k
    return np.float64(exponent) * 0.6931471805599453 + 2.0 * u * series


@jit
def log1p_nonnegative(y):
    """log(1 + y) for y >= 0 (float64), vectorisable: log_positive(1 + y) corrected for the rounding of 1 + y
    (Goldberg's trick), so a tiny y keeps its relative accuracy. NaN gives NaN."""
    u = 1.0 + y
    if u == 1.0:
        return y
    return log_positive(u) * (y / (u - 1.0)) if u == u else u


@intrinsic
def _prefetch_address(typingctx, address):
    """Hint the CPU to bring the cache line at ``address`` (an integer) into L1; never faults, returns nothing."""
    if address != types.intp:
        return None

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        prefetch_type = ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32])
        prefetch = cgutils.get_or_insert_function(builder.module, prefetch_type, "llvm.prefetch.p0")
        # (address, read, high temporal locality, data cache)
        builder.call(prefetch, [pointer, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(address), codegen


@jit
def prefetch_range(array, start_byte, n_bytes):
    """Prefetch ``n_bytes`` from ``start_byte`` past the start of ``array``'s data, one cache line at a time. The
    range may run past the array: a prefetch never faults."""
    base = array.ctypes.data + start_byte
    for offset in range(0, n_bytes, 64):
        _prefetch_address(base + offset)
