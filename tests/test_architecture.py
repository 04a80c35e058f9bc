"""Package boundaries, checked from the source (an AST walk, nothing is imported).

Every import statement of every module of ``evaluator/`` and ``leaderboard/`` counts,
including imports written inside functions: a lazy import still couples two modules.
- no import cycles between modules of the project (a package's ``__init__`` importing
  its own submodules is not a cycle);
- ``evaluator`` never imports ``leaderboard``;
- no ``leaderboard`` module imports a science library (the evaluator owns them);
- imports show dependencies: a project module imports the project modules it uses at its
  top, and defers one into a function body only when that keeps a heavy library
  (``HEAVY``) out of the processes that import it (the fork-server rule is one such case:
  ``test_fork_servers_preload_nothing_that_starts_threads``).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from repo_paths import REPO

ROOT = REPO  # the repository root
PACKAGES = ("evaluator", "leaderboard")
SCIENCE = frozenset({"pymatgen", "ase", "spglib", "torch", "torch_sim", "chgnet", "mace",
                     "sevenn", "smact"})


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the project's packages."""
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def names_of(node: ast.AST, package: list[str]) -> set[str]:
    """The dotted names one import statement refers to (none for other nodes).

    ``from a.b import c`` gives both ``a.b`` and ``a.b.c`` (``c`` may be a submodule);
    relative imports are resolved against ``package``.
    """
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        parent = package[:len(package) - node.level + 1]
        base = ".".join(parent + ([base] if base else []))
    return {base} | {f"{base}.{alias.name}" for alias in node.names if alias.name != "*"}


def type_only_nodes(tree: ast.AST) -> set[int]:
    """ids of the statements inside ``if TYPE_CHECKING:`` blocks (never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def imported_names(module: str, path: Path, tree: ast.AST, type_only: bool = True) -> set[str]:
    """Every dotted name an import statement anywhere in the module refers to (see
    ``names_of``); ``type_only=False``: not those in ``if TYPE_CHECKING:`` blocks."""
    out: set[str] = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    skip = set() if type_only else type_only_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        out |= names_of(node, package)
    return out


def import_graph(type_only: bool = True) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between project modules, top-level names each module imports); with
    ``type_only=False`` imports made only for the type checker do not count."""
    mods = project_modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    top: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for name in imported_names(m, f, ast.parse(f.read_text(), filename=str(f)), type_only):
            top[m].add(name.split(".")[0])
            target = name
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != m:
                edges[m].add(target)
    return edges, top


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, todo = work[-1]
            if todo:
                w = todo.pop()
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, sorted(edges[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def is_package_with_own_submodules(component: list[str]) -> bool:
    root = min(component, key=len)
    return all(m == root or m.startswith(root + ".") for m in component)


def test_the_walk_sees_function_level_and_relative_imports() -> None:
    src = "import a.b\nfrom . import c\ndef f():\n    from ..d import e\n    import numpy\n"
    names = imported_names("p.q.m", Path("m.py"), ast.parse(src))
    assert {"a.b", "p.q", "p.q.c", "p.d", "p.d.e", "numpy"} <= names


def test_cycle_finder_finds_a_cycle_and_ignores_a_dag() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_walk_covers_both_packages() -> None:
    edges, _ = import_graph()
    assert "evaluator.pipeline" in edges and "leaderboard.worker" in edges
    assert "evaluator.reference" in edges["evaluator.reference.registry"]


def test_no_import_cycles() -> None:
    edges, _ = import_graph()
    cycles = [c for c in strongly_connected(edges) if not is_package_with_own_submodules(c)]
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_evaluator_never_imports_leaderboard() -> None:
    _, top = import_graph()
    bad = sorted(m for m, names in top.items() if m.startswith("evaluator") and "leaderboard" in names)
    assert bad == [], f"evaluator modules importing leaderboard: {bad}"


def test_leaderboard_imports_no_science_library() -> None:
    _, top = import_graph()
    bad = {m: sorted(names & SCIENCE) for m, names in top.items()
           if m.startswith("leaderboard") and names & SCIENCE}
    assert bad == {}, f"leaderboard modules importing science libraries: {bad}"


@functools.cache
def runtime_imports(module: str, path: Path) -> frozenset[str]:
    """Dotted names imported when ``module`` is imported: module-level statements (and class
    bodies), not function bodies and not ``if TYPE_CHECKING:`` blocks."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            out.update(names_of(node, package))
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.ClassDef, ast.With)):
                visit(node.body)

    visit(ast.parse(path.read_text(), filename=str(path)).body)
    return frozenset(out)


def loaded_on_import(start: str) -> set[str]:
    """Top-level names of every library importing ``start`` loads, through project modules
    (the ``__init__`` of each package on the way included)."""
    mods = project_modules()
    seen: set[str] = set()
    libraries: set[str] = set()
    todo = [start]
    while todo:
        m = todo.pop()
        parts = m.split(".")
        for name in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if name not in mods or name in seen:
                continue
            seen.add(name)
            for imported in runtime_imports(name, mods[name]):
                target = imported
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target:
                    todo.append(target)
                else:
                    libraries.add(imported.split(".")[0])
    return libraries


def test_the_metric_catalogue_is_pure_data() -> None:
    """The leaderboard reads metric declarations through evaluator.catalogue: importing
    it (or a family's metrics.py) must not load a science library, even indirectly."""
    mods = project_modules()
    roots = ["evaluator.catalogue"] + sorted(m for m in mods if m.startswith("evaluator.families.")
                                              and m.endswith(".metrics"))
    assert len(roots) >= 9, roots  # the catalogue and eight families
    bad = {root: sorted(loaded_on_import(root) & SCIENCE) for root in roots}
    bad = {k: v for k, v in bad.items() if v}
    assert bad == {}, f"metric declarations pulling in science libraries: {bad}"


def test_the_import_walk_sees_what_a_module_loads() -> None:
    assert {"numpy", "pandas"} <= loaded_on_import("evaluator.families.diversity.family")
    assert loaded_on_import("evaluator.progress") <= {"__future__", "collections", "dataclasses"}


# (importer prefix, imported prefixes it must not use): imports that run against the layers.
LAYERS = [
    ("evaluator.progress", ("evaluator.",)),  # leaf
    # the family contract: counted metrics and the context type only
    ("evaluator.families.base", ("evaluator.families.", "evaluator.pipeline", "evaluator.reference",
                                 "evaluator.mlip", "evaluator.identity", "evaluator.ingest", "evaluator.cli",
                                 "evaluator.build")),
    ("evaluator.ingest", ("evaluator.context", "evaluator.pipeline", "evaluator.families", "evaluator.reference",
                          "evaluator.mlip", "evaluator.identity")),
    ("evaluator.context", ("evaluator.reference", "evaluator.mlip", "evaluator.pipeline")),
    ("evaluator.reference", ("evaluator.families", "evaluator.pipeline", "evaluator.cli", "evaluator.build")),
    ("evaluator.identity", ("evaluator.families", "evaluator.pipeline", "evaluator.cli", "evaluator.build")),
    ("evaluator.mlip", ("evaluator.families", "evaluator.reference", "evaluator.identity", "evaluator.pipeline")),
    ("evaluator.families", ("evaluator.cli", "evaluator.build", "evaluator.pipeline")),
    ("evaluator.pipeline", ("evaluator.cli", "evaluator.build")),
    ("leaderboard.store.layout", ("evaluator", "leaderboard")),  # leaf
]


def test_no_imports_against_the_layers() -> None:
    """Runtime scoring never reaches into the CLI or the offline builders, the ingest layer
    knows nothing of families or references, and leaf modules import nothing of the project.
    Imports made only for the type checker (``if TYPE_CHECKING:``) name a type, not a
    dependency, and do not count here (they do for cycles)."""
    edges, _ = import_graph(type_only=False)
    bad = []
    for importer, forbidden in LAYERS:
        for m in sorted(edges):
            if m != importer and not m.startswith(importer + "."):
                continue
            for target in sorted(edges[m]):
                if any(target == f.rstrip(".") or target.startswith(f if f.endswith(".") else f + ".")
                       for f in forbidden) and not target.startswith(importer):
                    bad.append(f"{m} -> {target}")
    assert bad == [], "imports against the layers: " + "; ".join(bad)


def test_families_import_only_the_families_they_require() -> None:
    """A family's folder imports another family's folder only when it declares it in
    ``requires`` (read from the Family(...) call in family.py, without importing it)."""
    edges, _ = import_graph()
    requires: dict[str, set[str]] = {}
    for f in sorted((ROOT / "evaluator" / "families").glob("*/family.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Family":
                for kw in node.keywords:
                    if kw.arg == "requires":
                        requires[f.parent.name] = set(ast.literal_eval(kw.value))
    assert len(requires) == 8, f"Family(...) with requires= not found in every family.py: {sorted(requires)}"
    bad = []
    for m in sorted(edges):
        parts = m.split(".")
        if len(parts) < 3 or parts[:2] != ["evaluator", "families"] or parts[2] == "base":
            continue
        for target in edges[m]:
            t = target.split(".")
            if len(t) >= 3 and t[:2] == ["evaluator", "families"] and t[2] not in ("base", parts[2]):
                if t[2] not in requires.get(parts[2], set()):
                    bad.append(f"{m} -> {target}")
    assert bad == [], "families importing families they do not require: " + "; ".join(bad)


# --- imports that show dependencies ---------------------------------------------------------

# Libraries worth keeping out of a process that does not use them: slow to import on a
# loaded 2-core machine (torch ~5 s, gradio ~11 s, torch_sim ~6 s, sklearn ~4 s, datasets
# ~3 s, ray ~2 s, pandas ~1.4 s, smact ~1 s, pymatgen.core ~1 s), starting threads, or pulling
# in one of those when used (the MLIP packages import torch; plotly, huggingface_hub load
# lazily but bring pandas/requests with their first use).
HEAVY = SCIENCE | frozenset({"e3nn", "networkx", "scipy", "sklearn", "matplotlib", "pandas", "pyarrow",
                             "datasets", "huggingface_hub", "ray", "gradio", "plotly"})
# The fork-server rule (``evaluator.procpool``, ``leaderboard.jobs.evalproc``): a fork server forks
# every worker of a pool from one process, which must stay single-threaded, or a child can
# inherit a lock held by a thread that does not exist in it and deadlock. So what a fork
# server preloads (a module-level ``PRELOAD`` tuple handed to ``run_bounded(preload=...)``)
# must not load a library that starts threads when imported. Measured (threads alive after
# ``import X`` beyond numpy's one OpenBLAS thread): pandas 4, pyarrow 2, smact 4 (pandas),
# torch_sim 3, gradio 4, datasets 4, sklearn 5.
STARTS_THREADS = frozenset({"pandas", "pyarrow", "smact", "torch_sim", "gradio", "datasets", "sklearn"})


def preloads() -> dict[str, tuple[str, ...]]:
    """Module -> its module-level ``PRELOAD`` tuple (what its pools' fork servers import)."""
    out: dict[str, tuple[str, ...]] = {}
    for m, f in project_modules().items():
        for node in ast.parse(f.read_text()).body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
            if isinstance(target, ast.Name) and target.id == "PRELOAD" and node.value is not None:
                out[m] = tuple(ast.literal_eval(node.value))
    return out


def fork_server_modules() -> set[str]:
    """Project modules a fork server imports: those named in a ``PRELOAD`` and what they import."""
    mods = project_modules()
    out: set[str] = set()
    for names in preloads().values():
        for name in names:
            if name.split(".")[0] in PACKAGES:
                todo = [name]
                while todo:
                    m = todo.pop()
                    parts = m.split(".")
                    for pkg in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
                        if pkg in mods and pkg not in out:
                            out.add(pkg)
                            for imported in runtime_imports(pkg, mods[pkg]):
                                target = imported
                                while target and target not in mods:
                                    target = target.rpartition(".")[0]
                                if target:
                                    todo.append(target)
    return out


def deferred_project_imports() -> list[tuple[str, int, frozenset[str]]]:
    """(module, line, project modules it names) of every project import written inside a
    function body (not in an ``if TYPE_CHECKING:`` block: those never run)."""
    mods = project_modules()
    out = []
    for m, f in mods.items():
        tree = ast.parse(f.read_text(), filename=str(f))
        package = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        skip = type_only_nodes(tree)
        seen: set[int] = set()
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            for node in ast.walk(fn):
                if id(node) in skip or id(node) in seen or not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                seen.add(id(node))
                targets = set()
                for name in names_of(node, package):
                    while name and name not in mods:
                        name = name.rpartition(".")[0]
                    if name:
                        targets.add(name)
                if targets:
                    out.append((m, node.lineno, frozenset(targets)))
    return sorted(out)


def why_deferred(importer: str, targets: frozenset[str], forked: set[str]) -> str | None:
    """Why importing ``targets`` inside a function of ``importer`` is right, or None (then it
    belongs at the top): the targets load a heavy library the importer does not load at its
    own top, computed through the import graph. In a module that a fork server imports
    (``forked``) a thread-starting one is required to stay out (the fork-server rule)."""
    heavy = set().union(*(loaded_on_import(t) for t in targets)) & HEAVY
    gain = heavy - loaded_on_import(importer)
    if not gain:
        return None
    if importer in forked and gain & STARTS_THREADS:
        return f"fork-server rule: keeps {', '.join(sorted(gain & STARTS_THREADS))} out of a fork server"
    return f"keeps {', '.join(sorted(gain))} out of importers of {importer}"


def test_the_deferred_import_walk_finds_function_bodies_only() -> None:
    found = {(m, t) for m, _, ts in deferred_project_imports() for t in ts}
    assert ("evaluator.mlip.mace_backend", "evaluator.mlip.neighbors") in found  # inside torch_sim_model
    assert not any(m == "evaluator.mlip.conformance" and t == "evaluator.mlip.base" for m, t in found)  # top
    assert why_deferred("evaluator.mlip.mace_backend", frozenset({"evaluator.mlip.neighbors"}), set()) \
        == "keeps torch out of importers of evaluator.mlip.mace_backend"
    assert why_deferred("evaluator.mlip.conformance", frozenset({"evaluator.data"}), set()) is None
    assert why_deferred("leaderboard.store", frozenset({"leaderboard.store.local"}), set()) is None
    assert "evaluator.identity.fingerprint" in fork_server_modules()


def test_fork_servers_preload_nothing_that_starts_threads() -> None:
    found = preloads()
    assert {"evaluator.identity.fingerprint", "evaluator.ingest.units", "evaluator.families.validity.core",
            "leaderboard.jobs.evalproc"} <= set(found), sorted(found)
    bad = {}
    for module, names in found.items():
        for name in names:
            libs = loaded_on_import(name) if name.split(".")[0] in PACKAGES else {name.split(".")[0]}
            if libs & STARTS_THREADS:
                bad[f"{module}.PRELOAD: {name}"] = sorted(libs & STARTS_THREADS)
    assert bad == {}, f"fork servers preloading thread-starting libraries: {bad}"


def test_project_imports_are_deferred_only_to_keep_a_heavy_library_out() -> None:
    """A project import inside a function hides a dependency; it is there only when the
    imported module loads a heavy library (``HEAVY``, through its own top-level imports)
    that the importing module does not, which includes what the fork-server rule keeps out
    of fork servers. None breaks a cycle between modules: ``test_no_import_cycles`` counts
    function-level imports too, so there is none for one to break (the store back ends import
    ``Store`` from ``leaderboard.store.base``, so the package imports them at its top). Every
    other import goes at the top."""
    forked = fork_server_modules()
    bad = [f"{m}:{line} -> {', '.join(sorted(t))}" for m, line, t in deferred_project_imports()
           if why_deferred(m, t, forked) is None]
    assert bad == [], "project imports inside functions that defer no heavy library (move them to the " \
                      "module top):\n" + "\n".join(bad)

