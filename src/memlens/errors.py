"""Errors that the CLI turns into one clear line and exit status 2."""


class UsageError(Exception):
    """Bad input from the user: a flag, a missing script, a bad capture file.

    The CLI prints ``memlens: error: <message>`` and exits with status 2.
    """
