"""Argument types shared by the report commands."""
import argparse


def count_arg(text):
    """A count >= 0 for --top."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if n < 0:
        raise argparse.ArgumentTypeError("%r must be 0 or more" % text)
    return n
