"""Compressed captures: the container around a capture file (docs/FORMAT.md).

`memlens run` writes the capture raw while the program runs (so a killed
process leaves a readable file) and, when the program has ended, rewrites it
as a compressed container: the 8-byte magic ``MLENSZ\\0\\n`` followed by one
zlib stream of the whole raw file. Captures shrink 5-7x.

The C reader reads raw captures; raw_path() gives it one, decompressing a
container once per process into a temporary file that is removed at exit.
"""
import atexit
import os
import tempfile
import zlib

from memlens.errors import UsageError

MAGIC_Z = b"MLENSZ\0\n"
_CHUNK = 1 << 20
_cache = {}  # (path, size, mtime_ns) -> temporary raw file


def is_compressed(path):
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC_Z)) == MAGIC_Z
    except OSError:
        return False


def compress(path, level=1):
    """Rewrite the raw capture at `path` as a compressed container, atomically.

    Returns (raw size, compressed size). The raw file stays if anything fails.
    """
    raw_size = os.path.getsize(path)
    tmp = path + ".z-tmp"
    comp = zlib.compressobj(level)
    from memlens import outfile
    dst = outfile.create(tmp)  # O_EXCL: never through a link left at tmp
    try:
        with open(path, "rb") as src, dst:
            dst.write(MAGIC_Z)
            while True:
                block = src.read(_CHUNK)
                if not block:
                    break
                dst.write(comp.compress(block))
            dst.write(comp.flush())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return raw_size, os.path.getsize(path)


def raw_path(path):
    """A path the C reader can read: `path` itself, or its decompressed copy.

    A container cut short (or damaged) decompresses as far as it goes; the
    reader then reports it as truncated. A container that does not start as
    a zlib stream is a UsageError.
    """
    path = os.fspath(path)
    if not is_compressed(path):
        return path
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    cached = _cache.get(key)
    if cached and os.path.exists(cached):
        return cached
    fd, tmp = tempfile.mkstemp(prefix="memlens-", suffix=".mlens")
    atexit.register(_remove, tmp)
    dec = zlib.decompressobj()
    written = 0
    with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
        src.read(len(MAGIC_Z))
        while True:
            block = src.read(_CHUNK)
            if not block:
                break
            try:
                out = dec.decompress(block)
            except zlib.error as exc:
                if written == 0:
                    raise UsageError("%s: damaged compressed capture (%s)" % (path, exc)) from None
                break  # keep what decompressed: read as a truncated capture
            dst.write(out)
            written += len(out)
        try:
            dst.write(dec.flush())
        except zlib.error:
            pass
    _cache[key] = tmp
    return tmp


def display(message, raw, path):
    """A reader message about the temporary raw file, told about `path`."""
    return message.replace(raw, path) if raw != path else message


def _remove(tmp):
    try:
        os.unlink(tmp)
    except OSError:
        pass
