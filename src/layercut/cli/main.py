"""The `layercut` command: a thin argparse layer over the Python API.

Each area registers its own subcommands (`add_commands(subparsers)`); this module wires them up
and is the one boundary where expected failures become one line on stderr, exit code 2:
a `LayercutError` (bad input, raised where it is found) or an `OSError` (a file or folder that
cannot be read or written). Ctrl-C gives one line and exit code 130. Anything else is a bug and
keeps its traceback; `LAYERCUT_TRACEBACK=1` shows the traceback of expected failures too.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import signal
import sys
import threading

from layercut.errors import LayercutError, as_flag, as_name, os_error_message

# Modules that define `add_commands(subparsers)`, in the order their commands are listed.
COMMAND_MODULES = (
    "layercut.cli.model",
    "layercut.cli.tasks",
    "layercut.cli.run",
    "layercut.cli.importance",
    "layercut.cli.sweep",
    "layercut.cli.search",
    "layercut.cli.evaluate",
    "layercut.cli.slim",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layercut",
        description="Cut layers off decoder-only language models, adapt them to classification, measure what is kept.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    unraisable_hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_interrupt_again_if_dropped, report=unraisable_hook)
    args = None
    try:
        _quiet_libraries()
        args = build_parser().parse_args(argv)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, where it is caught, not at exit
        return code
    except BrokenPipeError:  # the reader stopped reading (`layercut tasks | head`): end silently, as `ls | head` does
        # Python's advice: point stdout at /dev/null, or the flush at exit fails again and prints a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting must not print a traceback
        print("layercut: interrupted; finished results are kept", file=sys.stderr)
        return 130
    except (LayercutError, OSError) as error:
        if os.environ.get("LAYERCUT_TRACEBACK"):
            raise
        message = error.spelled(_spelling(args)) if isinstance(error, LayercutError) else os_error_message(error)
        print(f"layercut: error: {message}", file=sys.stderr)
        return 2
    finally:
        sys.unraisablehook = unraisable_hook


def _spelling(args):
    """How an error names a setting: as its experiment-file key for `layercut sweep`, whose settings come from the
    file, and as its flag for every other command."""
    return as_name if getattr(args, "command", None) == "sweep" else as_flag


def _interrupt_again_if_dropped(unraisable, report) -> None:
    """Python drops an exception raised inside a finalizer (`__del__`, which garbage collection runs at any
    moment, e.g. the regex module's) after printing 'Exception ignored in ...': a Ctrl-C landing there would
    vanish and the command run on. Send it again, from a moment later (sent from here, it would be raised, and
    dropped, inside this hook); anything else goes to the hook that was there."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        resend = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        resend.daemon = True
        resend.start()
    else:
        report(unraisable)


def entry_point() -> None:
    """The `layercut` command. After Ctrl-C, exit at once with 130: the interpreter's own shutdown (threads
    of the libraries, pending signals) could otherwise end the process by the signal instead."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


def _quiet_libraries() -> None:
    """Keep library chatter (e.g. the expected 'unexpected keys' of dropped blocks, datasets' cache
    notes) off the terminal, where it would precede or garble layercut's own lines."""
    import warnings

    os.environ.setdefault("DATASETS_VERBOSITY", "error")  # read when datasets is imported
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hub_logging.set_verbosity_error()  # e.g. a retry note per attempt to reach an unreachable Hub
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    if "datasets" in sys.modules:  # imported already (in-process use): its level is set, so set it again
        import datasets

        datasets.logging.set_verbosity_error()


if __name__ == "__main__":
    sys.exit(main())
