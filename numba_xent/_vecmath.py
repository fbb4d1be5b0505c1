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
negative-index wraparound on an index LLVM cannot prove non-negative turns every load into a gather (that made the
blocked ``row_max_sum_exp`` of v1 three times slower per element than one whole-row block).
"""

import llvmlite.binding as ll
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# Numba options, set once for the package. No blanket fastmath: NaN and inf behaviour is part of the contract.
EXACT = dict(nogil=True, error_model="numpy", cache=True)
REASSOC = dict(EXACT, fastmath={"reassoc", "contract"})


@intrinsic
def _float_from_bits(typingctx, bits):
    """Reinterpret int32/int64 bits as float32/float64 (an LLVM bitcast: free, and fine inside SIMD code)."""
    targets = {types.int32: (types.float32, ir.FloatType()), types.int64: (types.float64, ir.DoubleType())}
    if bits not in targets:
        return None
    result_type, llvm_type = targets[bits]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_type)

    return result_type(bits), codegen


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
    function only. Measured here: exp+sum 0.21 -> 0.15 ns/element (float32), 0.60 -> 0.39 (float64).
    llvmlite only validates a fixed list of attribute names, so the string attribute is added to the underlying set;
    if llvmlite ever changes that representation this silently falls back to 256-bit code.
    """

    def codegen(context, builder, signature, args):
        attributes = builder.function.attributes
        if _PREFER_512 and isinstance(attributes, set):
            set.add(attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


# Per dtype: (LLVM float, LLVM int, mantissa bits, magic, log2(e), ln2 hi, ln2 lo, underflow bound, coefficients
# c_k of exp(r) ~ 1 + c_1 r + ... on |r| <= ln2/2, highest first).
#  float32: magic = 1.5 * 2**23 + 127 (the exponent bias rides along in the low bits); ln2 split as Cephes; degree-6
#   near-minimax fit (relative error 2e-9 before rounding, 7e-8 evaluated in float32); below -87 -> 0 (< 2e-38).
#   Degree 5 (1.5e-7 evaluated) measured only ~4% faster, not worth the extra error.
#  float64: magic = 1.5 * 2**52 + 1023; fdlibm's ln2 split; degree-11 Taylor (truncation < 7e-15 relative);
#   below -708 -> 0 (< 3e-308).
_EXP_PARAMS = {
    types.float32: (
        ir.FloatType(),
        ir.IntType(32),
        23,
        12582912.0 + 127.0,
        1.4426950408889634,
        0.693359375,
        -2.12194440e-4,
        -87.0,
        (
            0.0013843596680089831,
            0.008374195545911789,
            0.04166800528764725,
            0.16666430234909058,
            0.4999999403953552,
            1.0,
        ),
    ),
    types.float64: (
        ir.DoubleType(),
        ir.IntType(64),
        52,
        6755399441055744.0 + 1023.0,
        1.4426950408889634,
        6.93147180369123816490e-01,
        1.90821492927058770002e-10,
        -708.0,
        tuple(1.0 / float(np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(11, 0, -1)),
    ),
}
_NO_FOLD = ("afn",)  # a flag that changes nothing for fadd/fmul/fcmp but stops Numba's fastmath pass adding reassoc


@intrinsic
def _exp_ir(typingctx, x):
    """exp(x) for x <= 0 (accurate up to x ~ 80 too) as straight-line LLVM IR; see ``_EXP_PARAMS``."""
    if x not in _EXP_PARAMS:
        return None
    float_t, int_t, mant_bits, magic, log2e, ln2_hi, ln2_lo, lowest, coefs = _EXP_PARAMS[x]

    def codegen(context, builder, signature, args):
        (value,) = args

        def const(c):
            return ir.Constant(float_t, c)

        # t = x*log2(e) + magic rounds x*log2(e) to the nearest integer n, stored in t's low mantissa bits.
        t = builder.fma(value, const(log2e), const(magic))
        fn = builder.fsub(t, const(magic), flags=_NO_FOLD)
        r = builder.fma(fn, const(-ln2_hi), value)
        r = builder.fma(fn, const(-ln2_lo), r)
        poly = const(coefs[0])
        for c in coefs[1:]:
            poly = builder.fma(poly, r, const(c))
        poly = builder.fma(poly, r, const(1.0))
        # (bias + n) << mantissa_bits is the bit pattern of 2**n (magic's own high bits shift out).
        scale = builder.bitcast(builder.shl(builder.bitcast(t, int_t), ir.Constant(int_t, mant_bits)), float_t)
        result = builder.fmul(poly, scale, flags=_NO_FOLD)
        # x < lowest is false for NaN, so NaN propagates through the polynomial; -inf and tiny values give 0.
        underflow = builder.fcmp_ordered("<", value, const(lowest), flags=_NO_FOLD)
        return builder.select(underflow, const(0.0), result)

    return x(x), codegen


def exp_nonpositive(x):
    """exp(x) for x <= 0, as softmax needs once the row max is subtracted. NaN gives NaN, -inf gives 0.

    float32: relative error below 1.2e-7 on [-87, 0] (and up to x = 80); below -87 it returns 0 (absolute
    error < 2e-38). float64: relative error below 1e-14 on [-708, 0]; below -708 it returns 0 (absolute error
    < 3e-308). Same bits whatever the caller's fastmath flags. Callable from ``@njit`` code only.
    """
    raise NotImplementedError("exp_nonpositive is for @njit code")


@overload(exp_nonpositive, inline="always", jit_options=EXACT)
def _exp_nonpositive_overload(x):
    if x in (types.float32, types.float64):
        return lambda x: _exp_ir(x)
    return None


@njit(inline="always", **EXACT)
def _order_key_f32(bits):
    # Float bits -> int32 that sorts like the float: an integer max vectorises, a float max does not
    # (LLVM needs nnan to vectorise a float max reduction, and we do not promise no NaNs).
    return np.int32(bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF)))


@njit(inline="always", **EXACT)
def _order_key_f64(bits):
    return np.int64(bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF)))


def _order_key(bits):
    raise NotImplementedError


@overload(_order_key, inline="always", jit_options=EXACT)
def _order_key_overload(bits):
    if bits == types.int32:
        return lambda bits: _order_key_f32(bits)
    if bits == types.int64:
        return lambda bits: _order_key_f64(bits)
    return None


def _zero_like(array):
    raise NotImplementedError


@overload(_zero_like, inline="always", jit_options=EXACT)
def _zero_like_overload(array):
    scalar_type = {types.float32: np.float32, types.float64: np.float64}[array.dtype]
    return lambda array: scalar_type(0.0)


@njit(**EXACT)
def block_max(row_bits, start, stop):
    """Max of ``row[start:stop]`` (non-empty) given the row viewed as integers of the same width (``row.view(intN)``).

    A positive NaN wins (the row's result is NaN); a negative NaN loses here but still poisons the sum of
    exponentials. Returns the float.
    """
    prefer_wide_vectors()
    block = row_bits[start:stop]
    best = _order_key(block[0])
    for j in range(1, block.shape[0]):
        key = _order_key(block[j])
        best = key if key > best else best  # not max(): it widens int32 to int64
    return _float_from_bits(_order_key(best))  # the key map is its own inverse


@njit(**REASSOC)
def block_sum_exp(row, start, stop, shift):
    """sum(exp(row[start:stop] - shift)) with every term <= 1, accumulated in the row's dtype.

    Callers keep blocks short (a few thousand elements) and add the block sums in float64.
    """
    prefer_wide_vectors()
    block = row[start:stop]
    total = _zero_like(row)  # not row[start] - row[start]: that is NaN when the row starts with -inf
    for j in range(block.shape[0]):
        total += exp_nonpositive(block[j] - shift)
    return total


# Elements per block of the online softmax: 8 KiB of float32, so the block is still in L1 when it is read the
# second time (for its exponentials) right after its max.
ONLINE_BLOCK = 2048


@njit(**EXACT)
def row_max_sum_exp(row, row_bits):
    """Online softmax statistics of one row in one pass over its memory: (max, sum(exp(row - max))).

    The row is walked in L1-sized blocks: each block's max, then its exponentials while it is still in cache;
    the running sum is rescaled when the running max grows. The sum is float64; the max has the row's dtype.
    """
    prefer_wide_vectors()
    n = row.shape[0]
    itemsize = row.itemsize
    row_max = block_max(row_bits, 0, min(n, ONLINE_BLOCK))
    prefetch_range(row, ONLINE_BLOCK * itemsize, PREFETCH_BYTES)
    total = np.float64(block_sum_exp(row, 0, min(n, ONLINE_BLOCK), row_max))
    for start in range(ONLINE_BLOCK, n, ONLINE_BLOCK):
        stop = min(n, start + ONLINE_BLOCK)
        new_max = block_max(row_bits, start, stop)
        prefetch_range(row, stop * itemsize, PREFETCH_BYTES)
        if new_max > row_max:
            total *= np.float64(exp_nonpositive(row_max - new_max))
            row_max = new_max
        total += np.float64(block_sum_exp(row, start, stop, row_max))
    return row_max, total


# ---------------------------------------------------------------------------------------------------------------
# Short rows (few classes): SIMD across rows instead of along them.

# Rows per transposed tile. Each SIMD lane is one row; 64 lanes = four 512-bit float32 vectors. The lane loops
# take their length from the scratch arrays' shape (not this constant): with a constant trip count LLVM unrolls them
# fully before the loop vectoriser runs, and Numba runs no SLP vectoriser, so they would stay scalar.
TILE_ROWS = 64
# Use rows_max_sum_exp when n_classes * itemsize <= this (C <= 128 float32, C <= 64 float64):
# measured crossover with row_max_sum_exp; beyond it the (C, 64) tile outgrows L1 and the per-lane float32 sums get
# long. Call them on chunks of >= 256 rows: each call allocates its scratch (~0.2 us per call).
ROWS_HELPER_MAX_BYTES = 512


def _int_dtype(array):
    raise NotImplementedError


@overload(_int_dtype, inline="always", jit_options=EXACT)
def _int_dtype_overload(array):
    bits_type = {types.float32: np.int32, types.float64: np.int64}[array.dtype]
    return lambda array: bits_type


@njit(inline="always", **EXACT)
def _load_tile(block, r0, tile):
    """tile[c, r] = block[r0 + r, c]; lanes past the block's last row are set to zero. Returns the row count."""
    n_rows, n_classes = block.shape
    lanes = tile.shape[1]
    rows = min(lanes, n_rows - r0)
    if rows == lanes:
        # Full tile: strided column reads vectorise as gathers, 0.25 vs 0.37 ns/element for the scalar transpose.
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


@njit(**EXACT)
def rows_max_sum_exp(block, out_max, out_sum):
    """Softmax statistics of every row of a short-row block, vectorised across rows.

    block: (R, C) C-contiguous float32/float64 (any R >= 0, C >= 1). Writes out_max[r] = max(block[r]) (row dtype,
    NaN if the row has a positive NaN) and out_sum[r] = sum_c exp(block[r, c] - out_max[r]) (float64 array; the
    terms are added in class order in the row dtype, then converted). Rows go TILE_ROWS at a time through a
    transposed scratch tile, so each SIMD lane is one row. Same NaN/inf semantics as row_max_sum_exp.
    """
    prefer_wide_vectors()
    n_rows, n_classes = block.shape
    tile = np.empty((n_classes, TILE_ROWS), block.dtype)
    tile_bits = tile.view(_int_dtype(block))
    best = np.empty(TILE_ROWS, _int_dtype(block))
    lane_max = np.empty(TILE_ROWS, block.dtype)
    lane_sum = np.empty(TILE_ROWS, block.dtype)
    lanes = best.shape[0]
    for r0 in range(0, n_rows, lanes):
        rows = _load_tile(block, r0, tile)
        keys = tile_bits[0]
        for r in range(lanes):
            best[r] = _order_key(keys[r])
        for c in range(1, n_classes):
            keys = tile_bits[c]
            for r in range(lanes):
                key = _order_key(keys[r])
                best[r] = key if key > best[r] else best[r]
        for r in range(lanes):
            lane_max[r] = _float_from_bits(_order_key(best[r]))
            lane_sum[r] = 0.0
        for c in range(n_classes):
            values = tile[c]
            for r in range(lanes):
                lane_sum[r] += exp_nonpositive(values[r] - lane_max[r])
        for r in range(rows):
            out_max[r0 + r] = lane_max[r]
            out_sum[r0 + r] = np.float64(lane_sum[r])


@njit(inline="always", **EXACT)
def log_positive(x):
    """log(x) of a positive normal float64, as straight-line code that vectorises across a loop (math.log stays
    a libm call per element). x = 2**e * m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(u), u = (m-1)/(m+1),
    |u| < 0.172: ten odd terms reach 1e-17. Measured error a few ulp. Not for 0, inf, NaN or subnormals.
    """
    bits = _f64_bits(x)
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


@intrinsic
def _f64_bits(typingctx, x):
    """The bits of a float64 as int64 (an LLVM bitcast)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


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
        builder.call(
            prefetch,
            [pointer, ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 3), ir.Constant(ir.IntType(32), 1)],
        )
        return context.get_dummy_value()

    return types.none(address), codegen


# Bytes ahead of the block being summed that row_max_sum_exp asks the CPU to fetch: one online block. The block's
# max is memory-bound and its exponentials are compute-bound; without the hint the two alternate, with it the next
# block streams in while this one's exponentials are computed.
PREFETCH_BYTES = ONLINE_BLOCK * 4


@njit(**EXACT)
def prefetch_range(array, start_byte, n_bytes):
    """Prefetch ``n_bytes`` from ``start_byte`` past the start of ``array``'s data, one cache line at a time. The
    range may run past the array: a prefetch never faults."""
    base = array.ctypes.data + start_byte
    for offset in range(0, n_bytes, 64):
        _prefetch_address(base + offset)
