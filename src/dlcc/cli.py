"""The command line: ``python -m dlcc {doctor,train,evaluate}``."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dlcc",
        description="Deep Learning Crash Course tools.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = commands.add_parser(
        "doctor", help="check Python, PyTorch and the GPU; print a matmul speed",
        description="Check this environment for the course and print what was found.",
    )
    doctor.add_argument("--seconds", type=float, default=1.0,
                        help="time spent measuring matmul speed (0 to skip; default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from dlcc import doctor

        return doctor.main(seconds=args.seconds)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
