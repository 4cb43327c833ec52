"""The library never imports the programs: vtr/ stands alone under pretrain/, index/, app/ and demo/."""

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = ("pretrain", "index", "app", "demo")

# Imports every module under vtr/ in a fresh interpreter, then lists the modules of the programs it pulled in.
SCRIPT = """
import json, pkgutil, sys
import vtr
names = [m.name for m in pkgutil.walk_packages(vtr.__path__, "vtr.")]
for name in names:
    __import__(name)
programs = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[1:])
print(json.dumps({"imported": names, "programs": programs}))
"""


def test_no_library_module_imports_a_program():
    done = subprocess.run([sys.executable, "-c", SCRIPT, *PROGRAMS], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # the walk saw the whole library (not an empty or partial package list) ...
    assert {"vtr.cli", "vtr.eval.heldout", "vtr.models.registry", "vtr.data.synthetic"} <= set(report["imported"])
    # ... and no module of any program ended up loaded
    assert report["programs"] == []


def test_the_demo_is_a_program_the_cli_loads_when_its_verb_runs():
    from vtr.cli import VERBS, _resolve

    target, _ = VERBS["demo"]
    assert target.split(":")[0].split(".")[0] == "demo"
    from demo.run import demo_command

    assert _resolve(target) is demo_command
    assert not (REPO / "vtr" / "demo.py").exists()


def imports_in(source_dir: Path, wanted) -> list[str]:
    """``file:line module`` for every import of a module ``wanted(module)`` accepts in the .py files under
    ``source_dir``, at any depth (the lazy imports inside functions too, which loading the modules would not
    reveal)."""
    found = []
    for path in sorted(source_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            found += [f"{path.relative_to(source_dir.parent)}:{node.lineno} {m}" for m in modules if wanted(m)]
    return found


def program_imports(source_dir: Path) -> list[str]:
    return imports_in(source_dir, lambda m: m.split(".")[0] in PROGRAMS)


def test_no_library_source_imports_a_program_even_lazily(tmp_path):
    assert program_imports(REPO / "vtr") == []
    # the check sees a lazy import inside a function (what vtr/demo.py used to do)
    (tmp_path / "vtr").mkdir()
    (tmp_path / "vtr" / "m.py").write_text("def f():\n    from pretrain.train import train\n    import app.server\n")
    assert program_imports(tmp_path / "vtr") == ["vtr/m.py:2 pretrain.train", "vtr/m.py:3 app.server"]


#: What the app may use of the index: the package's functions, the opened index, and the folder layout.
APP_DOORS = ("index", "index.search", "index.layout")


def test_the_app_reaches_the_index_only_through_its_public_doors():
    inside = imports_in(REPO / "app", lambda m: m.split(".")[0] == "index" and m not in APP_DOORS)
    catalog_reads = [f"{p.name}:{node.lineno}" for p in sorted((REPO / "app").rglob("*.py"))
                     for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.Attribute)
                     and node.attr == "catalog"]
    assert inside == [] and catalog_reads == []
    assert imports_in(REPO / "app", lambda m: m in APP_DOORS)  # the check looks at the app's real imports


def test_the_index_folder_layout_is_imported_from_its_own_module():
    """Names of the index folder contract come from index.layout, never through index.build (anywhere in the
    project): build.py uses the layout like every other stage."""
    import index.layout

    layout_names = set(index.layout.__all__)
    through_build = [f"{p.relative_to(REPO)}:{node.lineno} {a.name}"
                     for top in ("index", "app", "demo", "bench", "tests", "vtr", "pretrain")
                     for p in sorted((REPO / top).rglob("*.py"))
                     for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.ImportFrom)
                     and node.module == "index.build" for a in node.names if a.name in layout_names]
    assert through_build == []
    assert {"MANIFEST", "read_manifest", "thumbnail_path"} <= layout_names  # the check knows the layout's names
