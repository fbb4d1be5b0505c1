"""``python -m numba_xent``: every public function against a float64 NumPy reference, then a short timing table.
``python -m numba_xent warmup [--quick]``: compile the common kernels into Numba's disk cache ahead of time.

The benchmark tables of the README come from ``python -m benchmarks.table``, run from a clone of the repository.
"""

import sys

from ._selfcheck import self_check, timing_table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["warmup"]:
        from ._warmup import warmup

        warmup(quick="--quick" in argv[1:])
        return 0
    if argv:
        print(f"usage: python -m numba_xent [warmup [--quick]], got {' '.join(argv)}", file=sys.stderr)
        return 2
    if not self_check():
        print("self-check FAILED")
        return 1
    timing_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
