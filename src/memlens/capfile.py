"""Capture files for the C reader: compressed containers and pipes (docs/FORMAT.md).

`memlens run` writes the capture as a compressed container (the 8-byte
magic ``MLENSZ\\0\\n`` followed by one zlib stream of the raw capture) or,
with --no-compress, raw. The C reader reads both, from any file: a
container is inflated as it is read (no temporary file), with the libz.so.1
that CPython's zlib module uses.

raw_path(path) gives the C reader a path it can read as often as a report
needs (a report may open its capture more than once):
  - a regular file: the path itself;
  - a pipe, FIFO or device (``memlens summary <(cat f.mlens)``,
    ``cat f | memlens summary /dev/stdin``): its first bytes are checked at
    once (foreign or endless input such as /dev/zero is refused then), and a
    capture is copied as it comes (a container stays compressed) into an
    unlinked temporary file, read through /proc/self/fd; a FIFO is opened as
    `cat` opens it: memlens waits for a writer (Ctrl-C stops the wait);
  - where zlib cannot be loaded by the engine (or MEMLENS_NO_ZLIB=1, the
    tests' switch): a container is decompressed with Python's zlib module
    into an unlinked temporary file, once per process.
Temporary files are unlinked as they are made: a killed memlens leaves
nothing behind.
"""
import os
import stat
import tempfile
import zlib

from memlens.errors import UsageError

MAGIC = b"MLENS\0\r\n"
MAGIC_Z = b"MLENSZ\0\n"
_CHUNK = 1 << 20
_cache = {}  # key -> (open temporary file, its /proc/self/fd path)


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


def raw_path(path, progress=None):
    """A path the C reader can read as often as it needs: `path` itself, or a
    temporary copy (see the module's docstring). Raises UsageError for input
    that is not a capture (checked from its first bytes) or a container that
    is not a zlib stream (when Python's zlib decompresses it). progress(pos,
    size), if given, is called while Python's zlib decompresses a file (the
    engine's own streaming reports its progress as it reads)."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return path  # the C reader says what is wrong, in its words
    if stat.S_ISDIR(st.st_mode):
        return path
    if stat.S_ISREG(st.st_mode):
        if _engine_inflates() or not is_compressed(path):
            return path
        key = ("file", os.path.abspath(path), st.st_size, st.st_mtime_ns)
    else:
        key = ("stream", os.path.abspath(path), st.st_dev, st.st_ino)
    cached = _cache.get(key)
    if cached:
        return cached[1]
    tmp = _spool(path, progress)
    if tmp is None:
        return path
    proc = "/proc/self/fd/%d" % tmp.fileno()
    _cache[key] = (tmp, proc)
    return proc


def _engine_inflates():
    from memlens import _engine
    return _engine.inflate_available()


def _read_some(fd, n):
    while True:
        try:
            return os.read(fd, n)
        except InterruptedError:  # pragma: no cover (PEP 475 retries)
            continue


def _spool(path, progress=None):
    """Copy `path` into an unlinked temporary file (decompressing a container
    when the engine cannot); the file object, positioned anywhere."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None  # the C reader says what is wrong (no such file, permission)
    try:
        head = b""
        while len(head) < len(MAGIC_Z):
            block = _read_some(fd, len(MAGIC_Z) - len(head))
            if not block:
                break
            head += block
        if not head:
            raise UsageError("%s: empty file, not a memlens capture" % path)
        compressed = head == MAGIC_Z
        if not compressed and not MAGIC.startswith(head[:len(MAGIC)]):
            raise UsageError("%s: not a memlens capture (no MLENS header)" % path)
        inflate = compressed and not _engine_inflates()
        tmp = tempfile.TemporaryFile(prefix="memlens-", suffix=".mlens")
        try:
            if inflate:
                _inflate_into(fd, tmp, path, progress)
            else:
                tmp.write(head)
                while True:
                    block = _read_some(fd, _CHUNK)
                    if not block:
                        break
                    tmp.write(block)
            tmp.flush()
        except BaseException:
            tmp.close()
            raise
        return tmp
    finally:
        os.close(fd)


def _inflate_into(fd, dst, path, progress=None):
    """Python's zlib, for where the engine cannot load libz: decompress the
    stream after the magic into dst. A container cut short or damaged after
    its start keeps what decompressed (read as a truncated capture)."""
    dec = zlib.decompressobj()
    written = 0
    size = os.fstat(fd).st_size
    done = len(MAGIC_Z)
    while True:
        block = _read_some(fd, _CHUNK)
        if not block:
            break
        done += len(block)
        if progress and size:
            progress(done, size)
        try:
            out = dec.decompress(block)
        except zlib.error as exc:
            if written == 0:
                raise UsageError("%s: damaged compressed capture (%s)" % (path, exc)) from None
            return
        dst.write(out)
        written += len(out)
    try:
        dst.write(dec.flush())
    except zlib.error:
        pass


def display(message, raw, path):
    """A reader message about the temporary raw file, told about `path`."""
    return message.replace(raw, path) if raw != path else message
