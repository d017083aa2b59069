"""Docs for bnn_opt, offline: README.md from `nbs/index.ipynb`, and an HTML site from `nbs/*.ipynb`.

    python tools/build_docs.py readme [--check]      # README.md <- the markdown of nbs/index.ipynb
    python tools/build_docs.py html [--out _docs]    # one HTML page per notebook, index.html from index.ipynb

The site is built with `quarto` (nbdev's own `nbdev_docs`) when the Quarto binary is on PATH, else with
`nbconvert` (Jupyter's converter, a dev requirement). No builder executes a notebook: pages show the prose and
the code as stored, without hidden cells and `#|` directives. Links between notebooks (`02_optimizers.ipynb`,
`nbs/02_optimizers.ipynb`) become links between pages, and every page has a sidebar linking all the others.
"""
from __future__ import annotations

import argparse, html, json, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
README_NB = 'index.ipynb'
BUILDERS = ('quarto', 'nbconvert')

# ---------------------------------------------------------------- notebooks, directives, README

def notebooks(nbs: Path = NBS) -> list[Path]:
    "The notebooks of the site, sorted: `nbs/*.ipynb` except scratch ones (`_*`), as nbdev does."
    return sorted(p for p in Path(nbs).glob('*.ipynb') if not p.name.startswith(('_', '.')))


def read_nb(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding='utf-8'))


def _src(cell) -> str:
    s = cell.get('source', '')
    return ''.join(s) if isinstance(s, list) else s


_DIRECTIVE = re.compile(r'^\s*#\|\s*(.*?)\s*$')


def split_directives(src: str) -> tuple[list[str], str]:
    "The leading `#| ...` directives of a cell and the source without them."
    lines, dirs = src.splitlines(), []
    while lines and (m := _DIRECTIVE.match(lines[0])):
        dirs.append(m.group(1)); lines.pop(0)
    return dirs, '\n'.join(lines)


def is_hidden(cell) -> bool:
    "Hidden from README and docs: a `#| hide` directive, or a `hide`/`remove_cell` tag."
    dirs, _ = split_directives(_src(cell))
    tags = cell.get('metadata', {}).get('tags', [])
    return any(d.split()[:1] == ['hide'] for d in dirs) or bool({'hide', 'remove_cell'} & set(tags))


def visible_cells(nb: dict):
    "(cell type, source without directives) of each cell shown in README and docs."
    for cell in nb['cells']:
        if cell['cell_type'] in ('markdown', 'code') and not is_hidden(cell):
            _, src = split_directives(_src(cell))
            if src.strip(): yield cell, cell['cell_type'], src


def readme_text(nb_path: Path = NBS / README_NB) -> str:
    "README.md as `nbs/index.ipynb` makes it: its visible cells joined by blank lines, code cells fenced, nothing executed."
    parts = [src.strip('\n') if kind == 'markdown' else f'```python\n{src.strip(chr(10))}\n```'
             for _, kind, src in visible_cells(read_nb(nb_path))]
    return '\n\n'.join(parts) + '\n'


def write_readme(nb_path: Path = NBS / README_NB, readme: Path = ROOT / 'README.md', check=False) -> bool:
    "Write README.md from the notebook (or, with `check`, only say whether it is in sync); True when it was."
    new = readme_text(nb_path).encode('utf-8')
    same = readme.exists() and readme.read_bytes() == new
    if not same and not check: readme.write_bytes(new)
    return same


def title_of(nb: dict, default: str) -> str:
    "The notebook's title: its first `# heading`, as nbdev takes it."
    for cell in nb['cells']:
        if cell['cell_type'] == 'markdown':
            if m := re.search(r'^#\s+(.+?)\s*$', _src(cell), re.M): return m.group(1)
    return default


def _plain_title(t: str) -> str: return re.sub(r'`|\*\*', '', t)

# ---------------------------------------------------------------- links between notebooks

def fix_href(url: str, stems: set[str]) -> str:
    "`[nbs/]xx.ipynb[#frag]` -> `xx.html[#frag]` for a notebook of the site; other links unchanged."
    if re.match(r'^[a-z][a-z0-9+.-]*:|^#|^/', url, re.I): return url
    m = re.match(r'^(?:\./)?(?:nbs/)?([^/#?]+)\.ipynb(#.*)?$', url)
    return f'{m.group(1)}.html{m.group(2) or ""}' if m and m.group(1) in stems else url


def fix_links(page: str, stems: set[str]) -> str:
    "Rewrite the notebook links of an HTML page with `fix_href`."
    return re.sub(r'(href|src)="([^"]*)"', lambda m: f'{m.group(1)}="{fix_href(html.unescape(m.group(2)), stems)}"'
                  if '.ipynb' in m.group(2) else m.group(0), page)

# ---------------------------------------------------------------- the builders

_NAV_CSS = ('<style>body{padding-left:16rem!important}nav{position:fixed;top:0;left:0;bottom:0;width:14rem;'
            'overflow:auto;padding:1rem;background:#f5f6f8;border-right:1px solid #dde;font-family:sans-serif}'
            'nav a{display:block;padding:.2rem 0;text-decoration:none}nav a.current{font-weight:700}'
            'nav .site{font-weight:700;font-size:1.2rem;margin-bottom:.6rem}</style>')


def _nav(site: str, pages: list[tuple[str, str]], current: str) -> str:
    "The sidebar: a link to every page, the current one in bold."
    links = ''.join(f'<a href="{s}.html"{" class=current" if s == current else ""}>{html.escape(_plain_title(t))}</a>'
                    for s, t in pages)
    return f'{_NAV_CSS}<nav><div class="site">{html.escape(site)}</div>{links}</nav>'


def build_nbconvert(out: Path, nbs: Path = NBS) -> list[Path]:
    "Build the site with nbconvert's HTML exporter (lab template) from cleaned copies of the notebooks, unexecuted."
    import nbformat
    from nbconvert import HTMLExporter
    nbd = {p.stem: nbformat.read(p, as_version=4) for p in notebooks(nbs)}
    titles = {s: title_of(nb, s) for s, nb in nbd.items()}
    pages = sorted(titles.items(), key=lambda st: (st[0] != Path(README_NB).stem, st[0]))   # index first, as nbdev
    site = _plain_title(titles.get(Path(README_NB).stem, 'docs'))
    out.mkdir(parents=True, exist_ok=True)
    for p in out.glob('*.html'): p.unlink()          # only stale pages: never a whole folder that may hold other files
    exporter = HTMLExporter(template_name='lab', exclude_input_prompt=True, exclude_output_prompt=True)
    written = []
    for stem, nb in nbd.items():
        nb.cells = [nbformat.from_dict({**c, 'source': src}) for c, _, src in visible_cells(nb)]   # no hidden, no #|
        t = _plain_title(titles[stem]); t = t if t == site else f'{t} – {site}'
        page, _ = exporter.from_notebook_node(nb, resources={'metadata': {'name': t}})
        nav = _nav(site, pages, stem)
        page = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + '\n' + nav, fix_links(page, set(nbd)), count=1)
        (out / f'{stem}.html').write_text(page, encoding='utf-8'); written.append(out / f'{stem}.html')
    return written


def build_quarto(out: Path, nbs: Path = NBS) -> list[Path]:
    """Build nbdev's own site with `nbdev_docs` (needs the Quarto binary), then move `_docs/` to `out`.
    README.md is made by `readme` from index.ipynb: the README that nbdev_docs renders on the way is put back, and
    the `_quarto.yml`/`sidebar.yml`/`nbdev.yml` it writes into nbs/ are removed when they were not there before."""
    root = Path(nbs).resolve().parent                # the project folder: settings.ini, README.md, _docs/
    readme = root / 'README.md'
    before = readme.read_bytes() if readme.exists() else None
    created = [p for p in (Path(nbs) / f for f in ('_quarto.yml', 'sidebar.yml', 'nbdev.yml')) if not p.exists()]
    exe = Path(sys.executable).with_name('nbdev_docs')
    try: subprocess.run([str(exe) if exe.exists() else 'nbdev_docs', '--path', str(nbs)], cwd=root, check=True)
    finally:
        if before is not None and readme.read_bytes() != before: readme.write_bytes(before)
        for p in created: p.unlink(missing_ok=True)
    doc = root / '_docs'
    if doc.resolve() != Path(out).resolve():
        if Path(out).exists(): shutil.rmtree(out)
        shutil.move(str(doc), str(out))
    return sorted(Path(out).glob('*.html'))


def choose_builder() -> str:
    "`quarto` when the Quarto binary is on PATH, else `nbconvert`."
    return 'quarto' if shutil.which('quarto') else 'nbconvert'


def build_html(out: Path = ROOT / '_docs', builder: str = 'auto', nbs: Path = NBS) -> str:
    "Build the site into `out` with `builder` (`auto`: `choose_builder()`); returns the builder used."
    builder = choose_builder() if builder == 'auto' else builder
    if builder not in BUILDERS: raise ValueError(f"Invalid builder: `{builder}` (one of auto, {', '.join(BUILDERS)})")
    {'quarto': build_quarto, 'nbconvert': build_nbconvert}[builder](Path(out), Path(nbs))
    return builder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('readme', help='write README.md from nbs/index.ipynb')
    r.add_argument('--check', action='store_true', help='only check that README.md is in sync (exit 1 if not)')
    h = sub.add_parser('html', help='build the HTML site')
    h.add_argument('--out', default=str(ROOT / '_docs'), help='output folder (default: _docs/)')
    h.add_argument('--builder', default='auto', choices=('auto',) + BUILDERS)
    a = ap.parse_args(argv)
    if a.cmd == 'readme':
        same = write_readme(check=a.check)
        print('README.md is in sync with nbs/index.ipynb' if same else
              'README.md is out of date: run `make readme`' if a.check else 'README.md written from nbs/index.ipynb')
        return 0 if same or not a.check else 1
    t0 = time.time()
    used = build_html(Path(a.out), a.builder)
    n = len(list(Path(a.out).glob('*.html')))
    print(f'docs: built {n} HTML pages with the {used} builder into {a.out} in {time.time() - t0:.1f} s'
          + ('' if used == 'quarto' else ' (no Quarto binary on PATH: nbdev_docs not used)') + f'; open {Path(a.out) / "index.html"}')
    return 0


if __name__ == '__main__': sys.exit(main())
