"""`python -m models.native`: build the native extension (the decode step and the X-ray's traced LSTM
layer) unless a current build exists.

Prints what it did and how long it took; exits 1 (with the compiler's message) when the build fails,
which `./run` reports as a warning: the service then generates with the PyTorch step and traces the
X-ray with PyTorch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from models.native import ROOT, build, module_name


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m models.native", description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT, help=f"where builds live (default {ROOT})")
    parser.add_argument("--verbose", action="store_true", help="show the compiler's commands and output")
    args = parser.parse_args()
    start = time.perf_counter()
    where = args.root / module_name()
    try:
        built = build(args.root, verbose=args.verbose)
    except Exception as exc:  # the compiler's output is in the message
        seconds = time.perf_counter() - start
        print(f"native extension: build failed after {seconds:.1f} s: {exc}", file=sys.stderr)
        return 1
    what = "built" if built else "up to date"
    print(f"native extension: {what} ({where}, {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
