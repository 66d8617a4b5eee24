"""``python -m renderer``: the reference renderer alone, without the ``pixring`` composition
root (no service registration). The same flags and exit codes as ``pixring renderer``."""

import argparse
import sys

from renderer.cli import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m renderer", description="Run the pixring reference renderer.")
add_arguments(parser)
sys.exit(run(parser.parse_args()))
