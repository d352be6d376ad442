"""The module structure: imports point down (docs/architecture.md), training/'s layers import only their own layer
or below, no module imports a module that imports it back, every repository path named in prose exists, and
what the dependency direction lists twice agrees.

Imports are read from the source with ast (function-local imports included), so this runs in a second.
"""

import ast
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("efficientnet", "data", "tpu", "training", "configs")
# What each package may import from the project (besides itself): the dependency direction of the README.
ALLOWED = {
    "efficientnet": set(),
    "data": set(),
    "tpu": set(),
    "configs": set(),
    "training": {"efficientnet", "data", "tpu", "configs"},
    "main": {"training", "configs"},
    "eval_ckpt_main": {"training", "configs"},
    "export_model": {"training", "configs"},
}
# The entry points at the repository root: main.py and the original's two other scripts.
ROOT_SCRIPTS = ("main", "eval_ckpt_main", "export_model")


# training/ in layers, lowest first (docs/architecture.md): a module imports modules of its own layer or below.
TRAINING_LAYERS = (
    "training.errors",
    "training.checks",
    "training.preflight",
    "training.store",
    "training.core",
    "training.serving",
    "training.session",
)
_LAYER_RANK = {
    "training.errors": 0,
    "training.checks": 0,
    "training.preflight": 0,
    "training.store": 1,
    "training.core": 2,
    "training.serving": 3,
    "training.session": 4,
}


def _layer(module):
    """The rank of a training module's layer (None for the package's own __init__)."""
    parts = module.split(".")
    return None if len(parts) < 2 else _LAYER_RANK.get(".".join(parts[:2]))


def _project_modules():
    """{module name: path} for the root scripts and every .py file of the application packages."""
    modules = {name: os.path.join(REPO, f"{name}.py") for name in ROOT_SCRIPTS}
    for package in PACKAGES:
        for root, _, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    modules[dotted[: -len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return modules


def _imports(path, modules):
    """Project modules imported anywhere in the file (module-level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in modules)
    return found


def _graph():
    modules = _project_modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_imports_follow_the_dependency_direction():
    violations = []
    for module, imported in _graph().items():
        package = module.split(".")[0]
        for target in imported:
            target_package = target.split(".")[0]
            if target_package != package and target_package not in ALLOWED[package]:
                violations.append(f"{module} imports {target}")
    assert not violations, violations


def test_the_root_scripts_are_checked_and_import_only_training_and_configs():
    """Positive control: the root scripts are in the graph above, and each imports the layer that does its work."""
    graph = _graph()
    assert set(ROOT_SCRIPTS) <= set(graph)
    assert "training.session.original_scripts" in graph["eval_ckpt_main"] & graph["export_model"]
    assert all(target.split(".")[0] in ("training", "configs") for name in ROOT_SCRIPTS for target in graph[name])


def test_every_training_module_is_in_a_layer():
    loose = [m for m in _project_modules() if m.startswith("training.") and _layer(m) is None]
    assert not loose, f"modules of training/ outside its layers {TRAINING_LAYERS}: {loose}"


def test_training_layers_import_only_their_own_layer_or_below():
    violations = [
        f"{module} imports {target}"
        for module, imported in _graph().items()
        if module.startswith("training.")
        for target in imported
        if target.startswith("training.") and _layer(target) is not None and _layer(target) > _layer(module)
    ]
    assert not violations, violations


def test_the_layer_check_sees_an_upward_import():
    """Positive control: a store module importing the session would be ranked above its own layer."""
    assert _layer("training.session.run") > _layer("training.store.checkpoints") > _layer("training.errors")


def _cycle_from(start, graph):
    """A path start -> ... -> start through the import graph, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for target in graph.get(node, ()):
            if target == start:
                return path + [start]
            if target not in seen:
                seen.add(target)
                stack.append((target, path + [target]))
    return None


def test_no_module_imports_a_module_that_imports_it_back():
    graph = _graph()
    # A package's __init__ re-exporting its own modules is not a cycle between files of different concerns.
    graph = {m: {t for t in targets if not (t == m.split(".")[0] and "." in m)} for m, targets in graph.items()}
    cycles = [cycle for cycle in (_cycle_from(m, graph) for m in graph) if cycle]
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_the_cycle_check_sees_a_cycle():
    """Positive control for the check above."""
    assert _cycle_from("a", {"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle_from("a", {"a": {"b"}, "b": set()}) is None


# A path of this repository named in prose: starts at one of its folders (not inside another path, such as the
# original's models/official/efficientnet/tpu/...) and ends in a file extension.
_CITATION = re.compile(
    r"(?<![\w/.-])((?:configs|data|efficientnet|tpu|training|tests|benchmarks|docs|\.ci)/"
    r"[\w./-]*\w\.(?:py|md|txt|sh|png|json|csv))(?![\w])"
)
_OUTSIDE_NOTES = re.compile(r"\b(?:REFERENCE|DESIGN)(?:\.md| §)")


def _tracked_text_files():
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".") and d not in ("runs", "__pycache__", "build") and not d.endswith(".egg-info")
        ]
        for name in files:
            if name.endswith((".py", ".md")):
                yield os.path.join(root, name)


def test_the_citation_pattern_finds_repository_paths_and_not_the_originals():
    """Positive control for the check below."""
    text = (
        "see training/store/rundir.py, docs/recipe.md and tests/data/original_port.py; the original's "
        "models/official/efficientnet/tpu/efficientnet_x_builder.py and tests/data/original_port.sharpness"
    )
    assert _CITATION.findall(text) == ["training/store/rundir.py", "docs/recipe.md", "tests/data/original_port.py"]


def test_every_repository_path_named_in_prose_exists():
    missing, outside = [], []
    for path in _tracked_text_files():
        text = open(path, encoding="utf-8").read()
        relative = os.path.relpath(path, REPO)
        missing += [
            f"{relative}: {cited}" for cited in _CITATION.findall(text) if not os.path.exists(os.path.join(REPO, cited))
        ]
        outside += [f"{relative}: {m.group(0)}" for m in _OUTSIDE_NOTES.finditer(text)]
    assert not missing, missing
    assert not outside, f"{len(outside)} citations of notes that are not in the repository, e.g. {outside[:3]}"


def test_lists_the_dependency_direction_keeps_twice_stay_equal():
    """configs/ must not import data/ (main.py validates flags before TensorFlow loads), so the choices it
    validates are listed there too; they must not drift from what data/ implements."""
    from configs import base  # pylint: disable=import-outside-toplevel
    from data import preprocessing  # pylint: disable=import-outside-toplevel
    from efficientnet import variants  # pylint: disable=import-outside-toplevel

    assert tuple(base.AUGMENTATIONS) == tuple(preprocessing.AUGMENT_NAMES)
    assert tuple(variants.RESIZE_METHODS) == tuple(preprocessing.RESIZE_METHODS)
