"""The ``vtr`` command: one table of verbs.

Each verb is a plain function somewhere in the project; its keyword arguments are its flags.
Parameters without a default are positional; ``bool`` parameters become ``--flag`` / ``--no-flag``;
``list[...]`` parameters take one or more values. The first paragraph of the function's docstring
is the verb's help, and lines of the form ``name: text`` in its docstring document the flags.
Modules are imported only when their verb runs, so ``vtr --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import signal
import sys
import threading
import types
import typing
from contextlib import contextmanager

from vtr.errors import VtrError

# verb -> ("module:function", one-line help). Multi-word verbs ("index build") become sub-commands.
VERBS: dict[str, tuple[str, str]] = {
    "models": ("vtr.models.registry:models_command", "list registered weights and architectures"),
    "convert": ("vtr.models.registry:convert_command", "convert a checkpoint into vtr's format"),
    "eval": ("vtr.eval.command:eval_command", "zero-shot retrieval evaluation (published protocol)"),
    "shards make": ("vtr.data.shards:shards_make_command", "pack videos/images + captions into WebDataset shards"),
    "train": ("pretrain.train:main", "pretrain a model (the flags of python/torchrun -m pretrain.train)"),
    "index build": ("index.commands:build_command", "index the videos under folders (incremental)"),
    "index update": ("index.commands:update_command", "re-scan an index's folders"),
    "index status": ("index.commands:status_command", "show an index and its failed files"),
    "index remove": ("index.commands:remove_command", "take folders or videos out of an index (files untouched)"),
    "search": ("index.commands:search_command", "find moments by text, image or clip"),
    "app": ("app.server:app_command", "the search app in your browser (Gradio)"),
    "demo": ("demo.run:demo_command", "the whole pipeline offline: synthetic corpus, pretrain, eval, index, app"),
}


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _flag_help(doc: str) -> dict[str, str]:
    """``name: text`` lines of a docstring; a line indented deeper than the one before it continues that text."""
    helps, last, last_indent = {}, None, 0
    for line in doc.splitlines():
        indent = len(line) - len(line.lstrip())
        if last is not None and line.strip() and indent > last_indent:
            helps[last] += " " + line.strip()
            continue
        name, sep, text = line.strip().partition(":")
        last = None
        if sep and name.isidentifier() and text.strip():
            helps[name], last, last_indent = text.strip(), name, indent
    return helps


def _add_arguments(parser: argparse.ArgumentParser, fn) -> None:
    doc = inspect.getdoc(fn) or ""
    helps = _flag_help(doc)
    hints = typing.get_type_hints(fn)
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(name, str)
        origin = typing.get_origin(hint)
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if origin in (typing.Union, types.UnionType) and len(args) == 1:  # Optional[X] / X | None
            hint, origin, args = args[0], typing.get_origin(args[0]), typing.get_args(args[0])
        kwargs: dict = {"help": helps.get(name)}
        if origin in (list, tuple):
            kwargs["nargs"] = "+" if param.default is param.empty else "*"
            kwargs["type"] = args[0] if args else str
        elif hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = hint
        if param.default is param.empty:
            parser.add_argument(name, **kwargs)
        else:
            kwargs["default"] = param.default
            if kwargs.get("help") and param.default not in (None, False, ""):
                kwargs["help"] += f" (default: {param.default})"
            flags = ["-" + name] if len(name) == 1 else []  # one-letter parameters also get a short flag (-k)
            parser.add_argument(*flags, "--" + name.replace("_", "-"), dest=name, **kwargs)


#: The project's own loggers: INFO by default. Everyone else's (faiss's loader trying each instruction set, httpx,
#: gradio, ...) stays at WARNING unless -v asks for everything at DEBUG.
OWN_LOGGERS = ("vtr", "pretrain", "index", "app", "demo", "bench")


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr: the project's INFO lines and only warnings from third parties, or everything with ``verbose``."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def build_parser(verbs: dict[str, tuple[str, str]] = VERBS) -> argparse.ArgumentParser:
    from vtr import __version__

    parser = argparse.ArgumentParser(prog="vtr", description="Video-text retrieval with VideoMamba.")
    parser.add_argument("--version", action="version", version=f"vtr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, third-party libraries' included")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    groups: dict[str, argparse._SubParsersAction] = {}
    parser.group_parsers = {}  # "index" -> the parser of `vtr index`, for `vtr index -h`
    for verb, (target, help_text) in verbs.items():
        words = verb.split()
        where = subparsers
        for i, word in enumerate(words[:-1]):
            key = " ".join(words[: i + 1])
            if key not in groups:
                group = parser.group_parsers[key] = where.add_parser(word, help=f"{key} commands")
                groups[key] = group.add_subparsers(dest="verb_" + key.replace(" ", "_"), metavar="VERB", required=True)
            where = groups[key]
        sub = where.add_parser(words[-1], help=help_text)
        sub.set_defaults(_target=target, _parser=sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass only finds the verb (help held back, or it would print before the verb's flags exist);
    # the verb's own flags are added once its function is loaded.
    wants_help = any(a in ("-h", "--help") for a in argv)
    words = " ".join(a for a in argv if not a.startswith("-"))
    if wants_help and words in parser.group_parsers:  # `vtr index -h`: its verbs (a parse would want one first)
        parser.group_parsers[words].print_help()
        return 0
    known, _ = parser.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    if getattr(known, "_target", None) is None:
        if wants_help or not argv:
            parser.print_help()
            return 0 if wants_help else 2
        parser.parse_args(argv)  # reports the unknown verb / missing sub-verb and exits
    fn = _resolve(known._target)
    if getattr(fn, "cli_passthrough", False):  # a program with its own command line (vtr train)
        verb_at = argv.index(known._parser.prog.split()[-1])
        setup_logging(known.verbose)
        return _run(fn, argv[verb_at + 1:])
    sub: argparse.ArgumentParser = known._parser
    sub.description = (inspect.getdoc(fn) or "").split("\n\n")[0]
    _add_arguments(sub, fn)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    params = inspect.signature(fn).parameters
    return _run(fn, **{name: getattr(args, name) for name in params if hasattr(args, name)})


@contextmanager
def sigterm_as_interrupt():
    """While the block runs, SIGTERM (a service manager's stop) raises KeyboardInterrupt as Ctrl-C does, so a
    long-running command (``vtr app``, ``vtr index update --watch``, a build) ends the same way for both. Outside the
    main thread, where Python takes no handler, it changes nothing."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interrupted_says(message: str):
    """Ctrl-C, or SIGTERM (``timeout``, a scheduler, a service manager) as Ctrl-C, in a long command whose finished
    work is kept: the KeyboardInterrupt carries ``message`` (what is kept, the command that goes on), which
    :func:`_run` prints in place of a bare "interrupted"."""
    try:
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted: {message}") from None


def _run(fn, *args, **kwargs) -> int:
    try:
        result = fn(*args, **kwargs)
    except KeyboardInterrupt as e:  # a run stopped with a checkpoint says where it is
        print(str(e) or "interrupted", file=sys.stderr)
        return 130
    except VtrError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        if not _stdout_gone():  # a pipe of the program's own (a decoding worker's): a real error
            raise
        # The reader of the output stopped reading (`vtr search ... | head -1`): it has what it wanted. Before, a
        # BrokenPipeError traceback. stdout goes to /dev/null so that Python's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # as a program killed by SIGPIPE
    return int(result) if isinstance(result, int) else 0


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reading end was closed."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() (Windows), no file descriptor (a captured stdout)
        return False


if __name__ == "__main__":
    sys.exit(main())
