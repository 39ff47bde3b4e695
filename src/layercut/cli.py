"""The `layercut` command: a thin argparse layer over the Python API.

Each area registers its own subcommands (`add_commands(subparsers)`); this module only wires
them up and turns a `LayercutError` into one line on stderr with exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from layercut.errors import LayercutError

# Modules that define `add_commands(subparsers)`, in the order their commands are listed.
COMMAND_MODULES = (
    "layercut.model_commands",
    "layercut.tasks.commands",
    "layercut.run_commands",
    "layercut.importance.commands",
    "layercut.sweep.commands",
    "layercut.slim.commands",
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
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except LayercutError as error:
        print(f"layercut: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("layercut: interrupted; finished results are kept", file=sys.stderr)
        return 130


def _quiet_libraries() -> None:
    """Keep library chatter (e.g. the expected 'unexpected keys' of dropped blocks) off the terminal."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


if __name__ == "__main__":
    sys.exit(main())
