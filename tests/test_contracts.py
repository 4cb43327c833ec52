"""docs/CONTRACTS.md stays true: every signature it documents is the code's (names, order, defaults)."""

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md"
SHAPE = re.compile(r"(\w)\s+\[[^\]]*\]")  # "h [B,L,D]" -> "h": shapes are documentation only
CALL = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\(")


def documented_signatures():
    """(module, dotted name, parameter text) for every `name(...)` code span under a `## module` heading."""
    module = None
    text = CONTRACTS.read_text()
    for part in re.split(r"^(## .+)$", text, flags=re.M):
        if part.startswith("## "):
            module = part[3:].strip()
            continue
        if module is None:
            continue
        for span in re.findall(r"`([^`]+)`", part.replace("\n", " ")):
            m = CALL.match(span.strip())
            if m is None:
                continue
            params = _inside_parens(span.strip()[m.end() - 1:])
            if params is not None:
                yield module, m.group(1), params


def _inside_parens(s):
    """Text between the opening parenthesis at s[0] and its match, or None when unbalanced."""
    depth = 0
    for i, c in enumerate(s):
        depth += c in "([{"
        depth -= c in ")]}"
        if depth == 0:
            return s[1:i]
    return None


def parse_params(text):
    """[(name, kind, default source or None)], open (a trailing `...`: more keyword parameters may follow)."""
    text = SHAPE.sub(r"\1", " ".join(text.split())).strip()
    is_open = text == "..." or text.endswith(", ...")
    if is_open:
        text = text[:-3].rstrip().rstrip(",")
    args = ast.parse(f"def f({text}): pass").body[0].args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = [(a.arg, "positional", d) for a, d in zip(positional, defaults)]
    if args.vararg:
        params.append((args.vararg.arg, "*", None))
    params += [(a.arg, "keyword", d) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        params.append((args.kwarg.arg, "**", None))
    return params, is_open


def resolve(module, dotted):
    obj = importlib.import_module(module)
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


KINDS = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**",
         inspect.Parameter.KEYWORD_ONLY: "keyword"}


def actual_params(obj):
    params = list(inspect.signature(obj).parameters.values())
    if params and params[0].name == "self":  # a method looked up on its class
        params = params[1:]
    return [(p.name, KINDS.get(p.kind, "positional"), p.default) for p in params]


SIGNATURES = list(documented_signatures())


def test_the_contracts_document_signatures():
    # the parser finds what the file documents (a broken parser would make every check below vacuous)
    names = {f"{m}.{n}" for m, n, _ in SIGNATURES}
    assert len(SIGNATURES) >= 30
    assert {"vtr.models.retrieval.VideoTextModel", "vtr.models.retrieval.ModelConfig",
            "vtr.models.retrieval.VideoTextModel.encode_video", "vtr.ops.selective_scan.selective_scan",
            "vtr.models.registry.create_model"} <= names


@pytest.mark.parametrize("module, name, text", SIGNATURES, ids=[f"{m}.{n}" for m, n, _ in SIGNATURES])
def test_documented_signature_is_the_code(module, name, text):
    documented, is_open = parse_params(text)
    actual = actual_params(resolve(module, name))
    shown = actual[:len(documented)] if is_open else actual
    assert [(n, k) for n, k, _ in documented] == [(n, k) for n, k, _ in shown], \
        f"docs/CONTRACTS.md documents {name}({text}); the code has {inspect.signature(resolve(module, name))}"
    if is_open:  # what `...` leaves out must be optional
        assert all(d is not inspect.Parameter.empty or k in ("*", "**") for _, k, d in actual[len(documented):])
    for (pname, _, doc_default), (_, _, default) in zip(documented, shown):
        if doc_default is None:
            assert default is inspect.Parameter.empty, f"{name}: {pname} has a default ({default!r}) the doc omits"
            continue
        assert default is not inspect.Parameter.empty, f"{name}: {pname} has no default in the code"
        try:
            value = ast.literal_eval(doc_default)
        except ValueError:  # an expression such as Preprocess(): the code must have a default, checked above
            continue
        assert value == default, f"{name}: {pname} defaults to {default!r}, the doc says {value!r}"


def test_the_check_catches_a_wrong_signature():
    params, is_open = parse_params("u, delta [B,D,L], A=None, ...")
    assert [p[0] for p in params] == ["u", "delta", "A"] and is_open
    # the outdated constructor this file once documented is caught
    documented, _ = parse_params("vision_cfg, text_cfg, embed_dim=512, with_mlm_head=False")
    from vtr.models.retrieval import VideoTextModel

    assert [n for n, _, _ in documented] != [n for n, _, _ in actual_params(VideoTextModel)]
