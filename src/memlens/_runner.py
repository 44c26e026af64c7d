"""Run a program in this process as `python SCRIPT`, `-m MODULE` or `-c CODE`.

Private stand-in used by `memlens profile` until the shared runner
(memlens.runner, from the capture-engine issue) is on main.
"""
import os
import runpy
import sys
import traceback

from memlens.errors import UsageError


def run(target, args, mode="script"):
    """Run the program; returns its exit status (SystemExit honoured, an
    uncaught exception prints its traceback as python does and gives 1)."""
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
    try:
        if mode == "script":
            if not os.path.isfile(target):
                raise UsageError("no such script: %s" % target)
            sys.argv = [target] + list(args)
            sys.path[0] = os.path.dirname(os.path.abspath(target))
            call = lambda: runpy.run_path(target, run_name="__main__")
        elif mode == "module":
            import importlib.util
            try:
                found = importlib.util.find_spec(target) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                raise UsageError("no module named %s" % target)
            sys.argv = [target] + list(args)
            sys.path[0] = os.getcwd()
            call = lambda: runpy.run_module(target, run_name="__main__", alter_sys=True)
        elif mode == "code":
            sys.argv = ["-c"] + list(args)
            sys.path[0] = ""
            code = compile(target, "<string>", "exec")
            call = lambda: exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
        else:
            raise ValueError(mode)
        try:
            call()
        except SystemExit as exc:
            if exc.code is None:
                return 0
            if isinstance(exc.code, int):
                return exc.code
            sys.stderr.write("%s\n" % exc.code)
            return 1
        except Exception:
            traceback.print_exc()
            return 1
        return 0
    finally:
        sys.argv = saved_argv
        if saved_path0 is not None:
            sys.path[0] = saved_path0
