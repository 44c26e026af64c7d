"""Creating output files safely: every file memlens writes goes through here
(or, for the capture, through the C writer's ml_writer_open, which follows
the same rules).

The rules:
- A file is created with O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC: whatever
  already sits at the path (a file, a symbolic link, dangling or not, a
  FIFO, a directory) makes the creation fail. There is no exists-check
  separate from the open, so a file made in between is never overwritten.
- With force, an existing regular file or symbolic link is removed first
  (the link itself: its target is never opened) and the file is then
  created with O_EXCL as above. Directories and special files (FIFOs,
  devices, sockets) are never replaced.
- Every failure is an OSError; message() turns it into the one line the
  user sees (memlens.errors.UsageError, exit status 2).

    check(path, force)       before long work: would create() succeed?
    create(path, force)      the new file, open for writing (binary)
    reserve(path, force)     create it now, empty, and close it: for a
                             report written when a program ends; then
    reopen(reserved)         open that same file again (not a file put
                             in its place meanwhile), emptied
    ReservedText(reserved)   a text stream that reopens it at its first write
    discard(reserved)        remove it, still empty, when the command fails
"""
import errno
import io
import os
import stat

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISLNK, "a symbolic link"), (stat.S_ISREG, "a file"))


def _kind(st):
    for test, name in _KINDS:
        if test(st.st_mode):
            return name
    return "a special file"


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove_for_force(path):
    """With force: remove a regular file or a link at path, refuse the rest."""
    st = _lstat(path)
    if st is None:
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise OSError(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EEXIST,
                      "is %s" % _kind(st), path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def check(path, force=False):
    """Raise the OSError that create(path, force) would raise for what is at
    path now or for its folder (without creating anything)."""
    st = _lstat(path)
    if st is not None:
        if not force or not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise OSError(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EEXIST,
                          "is %s" % _kind(st), path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(errno.ENOENT, "no such directory", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)


def create(path, force=False, mode=0o666):
    """A new file at path, open for writing (binary, unbuffered-safe).
    Raises OSError; nothing at path is changed unless force allowed it."""
    if force:
        _remove_for_force(path)
    fd = os.open(path, _FLAGS, mode)
    return os.fdopen(fd, "wb")


def write(path, data, force=False):
    """Create path (as create()) and write data (bytes) into it; on a failed
    write the partial file is removed."""
    with create(path, force) as f:
        try:
            f.write(data)
            f.flush()
        except BaseException:
            try:
                os.unlink(path)
            except OSError:
                pass
            raise


class Reserved:
    """A file created empty by reserve(): its absolute path and identity."""

    def __init__(self, path, st):
        self.path, self.dev, self.ino = path, st.st_dev, st.st_ino


def reserve(path, force=False):
    """Create path now (as create()), empty, and close it. The path is made
    absolute, so a program that changes its folder does not move it."""
    path = os.path.abspath(path)
    with create(path, force) as f:
        st = os.fstat(f.fileno())
    return Reserved(path, st)


def reopen(reserved):
    """The reserved file, open for writing and emptied. If something else
    now stands at its path (a link, another file), OSError (EEXIST); if it
    was removed, it is created again with O_EXCL."""
    try:
        fd = os.open(reserved.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return create(reserved.path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.EEXIST, "was replaced by a symbolic link", reserved.path) from None
        raise
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (reserved.dev, reserved.ino) or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno.EEXIST, "was replaced by another file", reserved.path)
    os.set_blocking(fd, True)
    os.ftruncate(fd, 0)
    return os.fdopen(fd, "wb")


def discard(reserved):
    """Remove a reserved file that was never written (the command failed
    before the program ran); anything else at its path is left alone."""
    st = _lstat(reserved.path)
    if st is not None and (st.st_dev, st.st_ino) == (reserved.dev, reserved.ino) and not st.st_size:
        os.unlink(reserved.path)


class ReservedText:
    """A text stream (UTF-8; undecodable bytes of names written back as they
    were) onto a reserved file, reopened at its first write: the program
    that runs in between has no extra file open."""

    def __init__(self, reserved):
        self.reserved, self._f = reserved, None

    def write(self, s):
        if self._f is None:
            self._f = io.TextIOWrapper(reopen(self.reserved), encoding="utf-8",
                                       errors="surrogateescape")
        return self._f.write(s)

    def flush(self):
        if self._f is not None:
            self._f.flush()

    def close(self):
        if self._f is not None:
            self._f.close()


def message(path, exc, force=False):
    """The one line a user sees for exc, an OSError from this module or from
    the capture writer (same errno conventions), about path."""
    e = exc.errno
    detail = exc.strerror or str(exc)
    if e == errno.EEXIST and detail.startswith("was replaced"):
        return "%s %s while the program ran: nothing was written" % (path, detail)
    if e in (errno.EEXIST, errno.EISDIR):
        st = _lstat(path)
        kind = _kind(st) if st is not None else "a file"
        if kind == "a file" and not force:
            return "%s exists; use --force to replace it, or choose another file" % path
        if kind == "a symbolic link" and not force:
            return ("%s is a symbolic link; use --force to replace the link (its target is "
                    "never written), or choose another file" % path)
        return "%s is %s: memlens does not replace it" % (path, kind)
    if e in (errno.ENOENT, errno.ENOTDIR):
        return "can't create %s: no such directory: %s" % (path, os.path.dirname(os.path.abspath(path)))
    return "can't create %s: %s" % (path, detail)
