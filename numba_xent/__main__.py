"""``python -m numba_xent``: self-check and a short timing table; ``python -m numba_xent bench``: the benchmark."""

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        from ._bench import main as bench_main

        return bench_main(argv[1:]) or 0
    from ._selfcheck import self_check, timing_table

    if not self_check():
        print("self-check FAILED")
        return 1
    timing_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
