"""The vtr command's logging: the project's INFO lines, third-party chatter only with -v."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What a vtr verb does: log through the project's loggers and import faiss, whose loader logs at INFO/DEBUG
# while it tries each instruction set; a third-party INFO line is also emitted directly so the check does not
# depend on what this faiss build happens to print.
SCRIPT = """
import logging, sys
from vtr.cli import setup_logging
setup_logging(verbose=sys.argv[1] == "-v")
import faiss  # noqa: F401
logging.getLogger("index.build").info("own info line")
logging.getLogger("vtr.models").debug("own debug line")
logging.getLogger("faiss.loader").info("third-party info line")
logging.getLogger("httpx").warning("third-party warning line")
"""


def run(flag):
    done = subprocess.run([sys.executable, "-c", SCRIPT, flag], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_third_party_logs_are_quiet_by_default():
    err = run("-")
    assert "index.build: own info line" in err and "third-party warning line" in err
    assert "faiss" not in err and "own debug line" not in err


def test_verbose_shows_everything():
    err = run("-v")
    assert "own info line" in err and "own debug line" in err
    assert "faiss.loader: third-party info line" in err


@pytest.mark.parametrize("argv, verbose", [(["models"], False), (["-v", "models"], True)])
def test_the_command_sets_up_logging_from_its_flag(monkeypatch, capsys, argv, verbose):
    from vtr import cli

    calls = []
    monkeypatch.setattr(cli, "setup_logging", calls.append)
    assert cli.main(argv) == 0
    assert calls == [verbose]
    assert "videomamba_m16_25M" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["index", "-h"], ["-v", "index", "--help"]])
def test_help_of_a_verb_group_lists_its_verbs(capsys, argv):
    from vtr import cli

    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vtr index")
    for verb, (_, help_text) in cli.VERBS.items():
        if verb.startswith("index "):
            assert verb.split()[1] in out and help_text in out


def test_flag_help_reads_continued_lines():
    from vtr.cli import _flag_help

    doc = """Do a thing.

    precision: fp32, bf16 or auto (bf16 where it
               measures faster)
    out: where it goes
    other line: not a flag
    """
    assert _flag_help(doc) == {"precision": "fp32, bf16 or auto (bf16 where it measures faster)",
                               "out": "where it goes"}


def test_sigterm_ends_a_long_command_as_ctrl_c_does_and_only_inside_the_block():
    """``vtr app`` and ``vtr index update --watch`` stop on a service manager's SIGTERM as on Ctrl-C."""
    import os
    import signal

    from vtr.cli import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs as os.kill returns
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_as_interrupt_outside_the_main_thread_changes_nothing():
    """A build run from a thread (an app, a notebook's executor) goes through it: signal.signal raised there."""
    import signal
    import threading

    from vtr.cli import sigterm_as_interrupt

    before, ran, errors = signal.getsignal(signal.SIGTERM), [], []

    def body():
        try:
            with sigterm_as_interrupt():
                ran.append(True)
        except Exception as e:  # noqa: BLE001 - the assertion below names it
            errors.append(e)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert ran == [True] and errors == [] and signal.getsignal(signal.SIGTERM) is before
    with sigterm_as_interrupt():  # in the main thread it still turns SIGTERM into Ctrl-C
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_output_into_a_pipe_that_closes_ends_without_a_traceback():
    """`vtr search ... | head -1`: the reader goes once it has its lines. Before, a BrokenPipeError traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "vtr.cli", "models"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(root)})
    proc.stdout.close()  # before the program has printed anything (it is still importing)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err  # 128 + SIGPIPE, as `yes | head -1` gives
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
