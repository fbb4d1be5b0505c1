"""``python -m numba_xent``: every public function against a float64 NumPy reference, then a short timing table.

The benchmark tables of the README come from ``python -m benchmarks.table``, run from a clone of the repository.
"""

import sys

from ._selfcheck import self_check, timing_table


def main(argv: list[str] | None = None) -> int:
    if not self_check():
        print("self-check FAILED")
        return 1
    timing_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
