"""Run a Python program in this process exactly as `python` would.

Used by every command that runs a program (`memlens run`, `heap`,
`profile`): same sys.argv, sys.path[0], __main__ module, stdout/stderr and
exit status (sys.exit(n), an uncaught exception, KeyboardInterrupt).

Command lines look like ``memlens CMD [OPTIONS] (SCRIPT | -m MODULE | -c CODE)
[ARGS...]``: everything after the program is the program's, never memlens'.
split_command_line() does that split before argparse sees the options.
"""
import os
import signal
import sys
import threading
import types

from memlens.errors import UsageError


class Program:
    """What to run: kind is 'script', 'module' or 'code'."""

    __slots__ = ("kind", "target", "args")  # no __dict__: `memlens heap` skips it (Options)

    def __init__(self, kind, target, args):
        self.kind, self.target, self.args = kind, target, list(args)

    @property
    def name(self):
        """Short name for default output files."""
        if self.kind == "script":
            stem = os.path.splitext(os.path.basename(os.path.normpath(self.target)))[0]
            return stem or "script"
        return self.target.replace(".", "_") if self.kind == "module" else "c"


def split_command_line(argv, value_options=()):
    """Split argv into (memlens options, Program or None).

    value_options: the command's options that take a value (e.g. '-o'), so
    their values are not mistaken for the script.
    """
    opts = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("-m", "-c"):
            if i + 1 >= len(argv):
                raise UsageError("%s needs an argument" % tok)
            kind = "module" if tok == "-m" else "code"
            return opts, Program(kind, argv[i + 1], argv[i + 2:])
        if tok == "--":
            i += 1
            break
        if tok.startswith("-") and tok != "-":
            opts.append(tok)
            if tok in value_options:
                if i + 1 >= len(argv):
                    raise UsageError("%s needs an argument" % tok)
                opts.append(argv[i + 1])
                i += 1
            i += 1
            continue
        break
    if i >= len(argv):
        return opts, None
    return opts, Program("script", argv[i], argv[i + 1:])


class Options:
    """A command's parsed options (attributes, as argparse's Namespace).

    memlens' own objects must not show in the census of the program that
    `memlens heap` runs: this class, Program and Outcome are registered as
    memlens' own there (the walk skips their instances and what they hold),
    and the values live in a dict of plain values, which the collector does
    not track, so the walk does not meet it on its own either."""

    __slots__ = ("_values",)

    def __init__(self, values):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self._values[name] = value


def parse_command_line(argv, parser, value_options=()):
    """(options namespace, Program) for a command that runs a program.

    `parser` parses the command's own options (those before the program).
    -h/--help prints its help and exits 0; no program is a usage error.
    """
    opts, program = split_command_line(argv, value_options)
    if any(o in ("-h", "--help") for o in opts):
        parser.print_help()
        sys.exit(0)
    ns = parser.parse_args(opts)
    if program is None:
        parser.error("no program given: %s SCRIPT [ARGS...], -m MODULE or -c CODE" % parser.prog)
    return Options(vars(ns)), program


def _exec_main(code, namespace):
    """The program runs inside this function: profilers stop stacks here."""
    exec(code, namespace)


ENTRY_CODE = _exec_main.__code__


def _prepare(program):
    """Compile the program and build its __main__ namespace and sys.argv."""
    if program.kind == "script":
        path = program.target
        if os.path.isdir(path) or path.endswith(".zip"):
            raise UsageError("can't run %r: memlens runs script files, modules (-m) and code (-c)" % path)
        try:
            with open(path, "rb") as f:
                source = f.read()
        except OSError as exc:
            raise UsageError("can't open file %r: %s" % (path, exc.strerror or exc)) from None
        path = os.path.abspath(path)  # as python 3.9+: __file__ and code paths are absolute
        try:
            code = compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            return None, exc, None  # reported as Python would
        argv0 = program.target
        path0 = os.path.dirname(os.path.realpath(path))  # python resolves a symlinked script
        namespace = {"__name__": "__main__", "__file__": path, "__cached__": None,
                     "__doc__": None, "__package__": None, "__spec__": None, "__loader__": None}
    elif program.kind == "module":
        import runpy
        _note_memlens_modules()  # before the program's packages are imported
        _set_path0(os.getcwd())  # the module is looked up as python -m looks it up
        try:
            name, spec, code = runpy._get_module_details(program.target)
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        except Exception as exc:  # e.g. the package's __init__ raised
            raise UsageError("error while finding module %r: %s" % (program.target, exc)) from None
        argv0 = spec.origin
        path0 = os.getcwd()
        namespace = {"__name__": "__main__", "__file__": spec.origin, "__cached__": spec.cached,
                     "__doc__": None, "__loader__": spec.loader, "__package__": spec.parent,
                     "__spec__": spec}
    else:
        code = compile(program.target, "<string>", "exec", dont_inherit=True)
        argv0, path0 = "-c", ""
        namespace = {"__name__": "__main__", "__doc__": None, "__package__": None,
                     "__spec__": None, "__loader__": None}
    return code, namespace, (argv0, path0)


#: The modules memlens imported to run the program (names): loaded when
#: the program starts and not before memlens' first line. Set by run().
memlens_modules = frozenset()


def _note_memlens_modules():
    global memlens_modules
    import memlens
    memlens_modules = frozenset(sys.modules) - memlens._modules_before


def _set_path0(path0):
    """Make sys.path[0] the program's, exactly as python puts it there.

    The interpreter running memlens prepended memlens' own entry (the
    console script's folder, or the current folder for `python -m memlens`)
    unless safe-path (-P, PYTHONSAFEPATH, 3.11+) or isolated mode (-I) is on:
    that entry is replaced by the program's (the script's folder, symlinks
    resolved; the current folder for -m; '' for -c). With safe-path or -I,
    python prepends nothing for the program either, and neither does memlens.
    """
    if getattr(sys.flags, "safe_path", False) or sys.flags.isolated:
        return
    if sys.path:
        sys.path[0] = path0
    else:
        sys.path.insert(0, path0)


class Outcome:
    """How the program ended. status: exit status; signal: signal to re-raise."""

    __slots__ = ("status", "signum")

    def __init__(self, status=0, signum=None):
        self.status, self.signum = status, signum


def _report_exception(exc):
    """Print an uncaught exception as Python would, without our frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code is not ENTRY_CODE:
        tb = tb.tb_next
    tb = tb.tb_next if tb is not None else exc.__traceback__
    exc.__traceback__ = tb  # the default hook reads it from the exception (3.11+)
    try:
        sys.excepthook(type(exc), exc, tb)
    except Exception:
        import traceback
        traceback.print_exception(type(exc), exc, tb)


def _system_exit_status(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def run(program, on_start=None, on_end=None, on_os_exit=None):
    """Run the program; returns an Outcome. Raises UsageError if it can't start.

    on_start(): just before the program's first line (after its imports by
    memlens are done). on_end(outcome): when the program has ended, after
    its non-daemon threads are joined, before the interpreter tears down.
    on_os_exit(): when the program calls os._exit (the process ends there),
    in this process or in a child it forked.
    """
    if program.kind != "module":
        _note_memlens_modules()
    code, namespace, where = _prepare(program)
    if code is None:  # the script does not compile: print it as Python does
        import traceback
        traceback.print_exception(type(namespace), namespace, None)
        return Outcome(1)
    argv0, path0 = where
    sys.argv[:] = [argv0] + program.args
    if program.kind != "module":  # -m set it before looking the module up
        _set_path0(path0)
    main_module = types.ModuleType("__main__")
    main_module.__dict__.update(namespace)
    namespace = main_module.__dict__
    namespace["__builtins__"] = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
    saved_main = sys.modules.get("__main__")
    sys.modules["__main__"] = main_module

    real_os_exit = os._exit

    def os_exit(status):  # also in forked children: they may record too
        if on_os_exit is not None:
            try:
                on_os_exit()
            except BaseException:
                pass
        real_os_exit(status)

    os._exit = os_exit
    outcome = Outcome()
    try:
        if on_start is not None:
            on_start()
        try:
            _exec_main(code, namespace)
        except SystemExit as exc:
            outcome.status = _system_exit_status(exc)
        except KeyboardInterrupt as exc:
            _report_exception(exc)
            outcome.status, outcome.signum = 130, signal.SIGINT
        except BaseException as exc:
            _report_exception(exc)
            outcome.status = 1
        _join_threads()
    finally:
        os._exit = real_os_exit
        if on_end is not None:
            on_end(outcome)
        sys.modules["__main__"] = main_module  # keep the program's objects alive
        _keep.append(saved_main)
    return outcome


_keep = []


def _join_threads():
    """Wait for non-daemon threads, as the interpreter does at exit."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        try:
            shutdown()
        except Exception:
            pass


def finish(outcome):
    """Exit the process the way the program would have."""
    if outcome.signum is not None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        signal.signal(outcome.signum, signal.SIG_DFL)
        os.kill(os.getpid(), outcome.signum)
    return outcome.status
