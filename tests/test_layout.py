"""The layout shows the architecture: the library (`bnn_opt.*`) never depends on the thesis's reproduction
machinery (`bnn_opt.repro.*`); only the command line (`bnn_opt.cli`) sees both."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / 'bnn_opt'
ENTRY_POINTS = {'cli.py', '_modidx.py'}  # the `bnn-opt` command wires library and reproduction together


def _imported_modules(path: Path) -> set:
    "Absolute names of the bnn_opt modules `path` imports (relative imports resolved against its package)."
    pkg = path.relative_to(PKG.parent).with_suffix('').parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import): out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(pkg[:len(pkg) - node.level + 1]) if node.level else []
            mod = '.'.join(base + ([node.module] if node.module else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from . import repro`
    return {m for m in out if m.startswith('bnn_opt')}


def test_library_never_imports_repro():
    offenders = {p.name: sorted(m for m in _imported_modules(p) if m.startswith('bnn_opt.repro'))
                 for p in PKG.glob('*.py') if p.name not in ENTRY_POINTS}
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_repro_holds_the_machinery():
    repro = {p.stem for p in (PKG / 'repro').glob('*.py')}
    assert {'design', 'runner', 'results', 'verdicts', 'report', 'reproduce'} <= repro, repro
    library = {p.stem for p in PKG.glob('*.py')}
    assert not library & {'design', 'runner', 'results', 'verdicts', 'report', 'reproduce'}, library


def test_the_check_sees_a_reverse_import(tmp_path):
    "The import scan resolves relative imports: a library module importing `.repro.design` is caught."
    fake = PKG / '_layout_probe.py'
    try:
        fake.write_text('from .repro.design import TABLES\nfrom . import repro\n')
        assert {'bnn_opt.repro.design', 'bnn_opt.repro'} <= _imported_modules(fake)
    finally: fake.unlink()
