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

import numpy as np
from llvmlite import ir
from numba import njit, types
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
    n = row.shape[0]
    row_max = block_max(row_bits, 0, min(n, ONLINE_BLOCK))
    total = np.float64(block_sum_exp(row, 0, min(n, ONLINE_BLOCK), row_max))
    for start in range(ONLINE_BLOCK, n, ONLINE_BLOCK):
        stop = min(n, start + ONLINE_BLOCK)
        new_max = block_max(row_bits, start, stop)
        if new_max > row_max:
            total *= np.float64(exp_nonpositive(row_max - new_max))
            row_max = new_max
        total += np.float64(block_sum_exp(row, start, stop, row_max))
    return row_max, total
