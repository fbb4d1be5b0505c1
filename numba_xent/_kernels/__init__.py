"""The Numba row loops, one module per family: ``sparse`` (integer labels), ``dense`` (probability targets),
``binary`` (binary cross-entropy with logits) and ``softmax``; ``rows`` holds what they share (row statistics,
weights, the short-row rule and the fixed-order block sums).

Kernels take C-contiguous 2-D ``(rows, classes)`` arrays and plain scalars and validate nothing Python can check
cheaply. An absent option (a weight, per-row ``grad_output``, the gradient itself) is ``None``: Numba compiles a
separate specialisation for ``None`` and prunes the branches that test ``is None``, so a call compiles and runs only
the code it uses. Each row loop is a :class:`~numba_xent._jit.RowKernel` (a parallel kernel and its serial twin).
"""
