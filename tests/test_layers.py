"""Imports follow the stages (DEVELOPERS.md): recipe -> config -> data -> models -> methods -> engine -> checkpoint
-> export -> check -> report. Every `edgessl` import in the package (also inside functions and `TYPE_CHECKING`
blocks) is read with `ast`; one from a later stage fails the test. There is no list of exceptions.

Where the modules sit: the base layer (errors, safe_load, distributed, and `edgessl.checkpoint`, the owner of the
checkpoint format and the run folder's names, which every stage reads) is below config; `measure` (features, kNN,
linear probe) sits below the methods and the engine; the "checkpoint" stage is what works on trained checkpoints
(`pruning`); `export.check` and `export.pipeline` (export, then check) are the check stage; `evaluation` (eval.json,
the report) is the report stage; the CLI and the benchmarks' helpers (`benchmarking`) are on top.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgessl"
BENCHMARKS = PACKAGE.parent / "benchmarks"
STAGES = [
    ("base", ("edgessl", "edgessl.errors", "edgessl.safe_load", "edgessl.distributed", "edgessl.checkpoint",
              "edgessl.file_hash")),
    ("config", ("edgessl.config",)),
    ("data", ("edgessl.data",)),
    ("models", ("edgessl.models",)),
    ("measure", ("edgessl.measure",)),
    ("methods", ("edgessl.methods", "edgessl.config_reference")),  # the key reference reads methods' options
    ("engine", ("edgessl.engine",)),
    ("checkpoint", ("edgessl.pruning",)),
    ("export", ("edgessl.export",)),
    ("check", ("edgessl.export.check", "edgessl.export.pipeline", "edgessl.export.check_artifact",
               "edgessl.export.consumers", "edgessl.export.bundle", "edgessl.export.plan",
               "edgessl.device")),  # consumers, the bundle writer and the board check run artifacts
    ("report", ("edgessl.evaluation",)),
    ("cli", ("edgessl.commands", "edgessl.cli", "edgessl.__main__", "edgessl.benchmarking")),
]


def stage_of(module: str) -> int:
    """The stage of a module: the one whose longest prefix matches its dotted name."""
    best, index = "", -1
    for i, (_, prefixes) in enumerate(STAGES):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, index = p, i
    assert index >= 0, f"{module} is in no stage; add it to STAGES"
    return index


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, module) of every `edgessl` import; `from edgessl import x` counts as edgessl.x when x is a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                      if (PACKAGE.parent / node.module.replace(".", "/") / f"{a.name}.py").exists()
                      or (PACKAGE.parent / node.module.replace(".", "/") / a.name).is_dir()]
    return [(line, m) for line, m in found if m == package or m.startswith(package + ".")]


def test_no_import_runs_back_up_the_stages():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        here = stage_of(source)
        for line, target in imported(ast.parse(path.read_text()), "edgessl"):
            if stage_of(target) > here:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({STAGES[here][0]}) imports {target} "
                                f"({STAGES[stage_of(target)][0]})")
    assert not problems, "imports from a later stage:\n" + "\n".join(problems)


def test_the_walk_sees_a_violation():
    tree = ast.parse("def f():\n    from edgessl.engine.trainer import pretrain\n")
    assert imported(tree, "edgessl") == [(2, "edgessl.engine.trainer")]
    assert stage_of("edgessl.engine.trainer") > stage_of("edgessl.models.registry")
    assert stage_of("edgessl.export.check") > stage_of("edgessl.export.onnx_target")


def test_benchmarks_import_the_package_not_each_other():
    siblings = {p.stem for p in BENCHMARKS.glob("*.py")}
    problems = [f"{p.name}:{line} imports {m}" for p in sorted(BENCHMARKS.glob("*.py")) for s in siblings
                for line, m in imported(ast.parse(p.read_text()), s)]
    assert not problems, "\n".join(problems)
