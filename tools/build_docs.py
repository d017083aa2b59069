"""Docs for bnn_opt, offline: README.md from `nbs/index.ipynb`, and nbdev's documentation site from `nbs/*.ipynb`.

    python tools/build_docs.py readme [--check]      # README.md <- the markdown of nbs/index.ipynb
    python tools/build_docs.py html [--out _docs]    # the site: a page per notebook, index.html from index.ipynb

The site is what `nbdev_docs` makes. First nbdev's notebook processors (those `nbdev_proc_nbs` runs; they need no
Quarto) turn each notebook into its page: title and description from the first markdown cell, a `show_doc`
(signature, docstring, parameter comments) after each exported definition, `#| export` and `#| hide` cells
removed, backticked names linked to their pages. They run only what the signatures need (imports, exported
cells, `show_doc` cells), never a test or an example. `DocsFilter` adds three things to nbdev's processors: a
`show_doc` for each public method attached with `attach_method` (nbdev finds fastcore's `@patch` only), a cell
that mixes imports with other code runs its imports only (nbdev runs it whole: a test, in the docs build), and
the prose after a notebook's title and description stays (nbdev drops the whole cell they are in).

Then, with the Quarto binary on PATH, `nbdev_docs` itself renders them (with `DocsFilter`). Without it,
nbconvert (a dev requirement) renders each processed notebook: Quarto's cell options applied (`echo: false`,
`output: asis`, `include: false`), pages named as nbdev names them (`02_optimizers.ipynb` -> `optimizers.html`),
headings with Pandoc's ids (nbdev's links point at them), a sidebar, links kept inside the site, and math typeset
by a copy of MathJax from `jupyter-server-mathjax`: building and reading the site need no network.
"""
from __future__ import annotations

import argparse, ast, contextlib, html, json, os, re, shutil, sys, tempfile, time, warnings
from pathlib import Path

from fastcore.foundation import L
from nbdev import processors as nbp
from nbdev.process import NbCell, Processor, mk_cell

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

# ---------------------------------------------------------------- nbdev's processors, and two more

def attached_name(tree) -> str | None:
    "`Cls.name` when `tree` defines a function decorated with `@attach_method(Cls[, name])`, else None."
    for d in getattr(tree, 'decorator_list', []):
        f = getattr(d, 'func', None)
        if isinstance(d, ast.Call) and (getattr(f, 'id', None) or getattr(f, 'attr', None)) == 'attach_method' and d.args:
            name = d.args[1] if len(d.args) > 1 else next((k.value for k in d.keywords if k.arg == 'name'), None)
            nm = name.value if isinstance(name, ast.Constant) and name.value else tree.name.lstrip('_')
            return f'{ast.unparse(d.args[0])}.{nm}'
    return None


class show_attached(Processor):
    "After each exported cell, `show_doc` of each public method it attaches with `attach_method` (nbdev knows only `@patch`)."
    def begin(self):
        cells = self.nb.cells
        shown = {nbp._get_nm(t) for t in nbp._show_docs(L(cells).map(NbCell.parsed_).concat())}
        for cell in reversed([c for c in cells if nbp._want_doc(c)]):
            names = [n for t in (cell.parsed_() or []) if (n := attached_name(t))
                     and not n.rsplit('.', 1)[1].startswith('_') and n not in shown]
            for nm in reversed(names):
                new = mk_cell(f"show_doc({nm}, name='{nm}')"); new.has_sd = True   # the name: a wrapped method's is its def's
                cells.insert(cell.idx_ + 1, new)


def _runs_only_imports(cell) -> str | None:
    "For a cell nbdev would run because it imports but that also does other things: its top-level imports only."
    if cell.cell_type != 'code' or not cell.source or not (trees := cell.parsed_()): return None
    if cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'} or nbp._show_docs(trees): return None
    if not nbp._ast_contains(trees, (ast.Import, ast.ImportFrom)): return None
    imports = [t for t in trees if isinstance(t, (ast.Import, ast.ImportFrom))]
    return None if len(imports) == len(trees) else '\n'.join(ast.unparse(t) for t in imports)


class exec_show_docs(nbp.exec_show_docs):
    "nbdev's `exec_show_docs`, except that a cell mixing imports with other code (a test) runs only its imports."
    def __call__(self, cell):
        if (src := _runs_only_imports(cell)) is not None:
            if not src or cell.directives_.get('eval:', [''])[0].lower() == 'false': return
            only = mk_cell(src); only.idx_ = cell.idx_
            return super().__call__(only)
        return super().__call__(cell)

    def end(self):
        super().end()
        thread = getattr(getattr(getattr(self, 'k', None), 'history_manager', None), 'save_thread', None)
        if thread: thread.stop()         # each shell's history thread, stopped now: at exit, 25 of them take seconds


class split_title_cell(Processor):
    """nbdev takes the title and description from the first markdown cell with a `# heading` and drops that cell
    (`FrontmatterProc`): the prose after them would be lost, so it moves to a markdown cell of its own."""
    def begin(self):
        for i, c in enumerate(self.nb.cells):
            if c.cell_type == 'raw' and re.match(r'\s*---', c.source or ''): return       # YAML front matter instead
            if c.cell_type != 'markdown' or not re.search(r'^#\s+\S', c.source or '', re.M): continue
            lines = c.source.splitlines()
            t = next(j for j, l in enumerate(lines) if re.match(r'^#\s+\S', l))
            d = next((j for j in range(t + 1, len(lines)) if lines[j].strip()), None)
            keep = {t} | ({d} if d is not None and re.match(r'^>\s+\S', lines[d]) else set())
            rest = '\n'.join(l for j, l in enumerate(lines) if j not in keep).strip('\n')
            if rest.strip():
                c.source = '\n\n'.join(lines[j] for j in sorted(keep))
                self.nb.cells.insert(i + 1, mk_cell(rest, 'markdown'))
            return


class DocsFilter(nbp.FilterDefaults):
    """nbdev's notebook processors for the docs, with `split_title_cell` first, `show_attached` after
    `add_show_docs`, and our `exec_show_docs`."""
    def base_procs(self):
        procs = [split_title_cell] + list(super().base_procs())
        procs.insert(procs.index(nbp.add_show_docs) + 1, show_attached)
        procs[procs.index(nbp.exec_show_docs)] = exec_show_docs
        return procs


@contextlib.contextmanager
def nbdev_env(root: Path = ROOT):
    "Run nbdev as `nbdev_proc_nbs` does: settings.ini of `root` (its working directory), IN_TEST set, warnings quiet."
    from nbdev.config import get_config
    old, in_test = os.getcwd(), os.environ.get('IN_TEST')
    os.chdir(root); os.environ['IN_TEST'] = '1'; get_config.cache_clear()
    try:
        with warnings.catch_warnings(): warnings.simplefilter('ignore'); yield
    finally:
        os.chdir(old); get_config.cache_clear()
        if in_test is None: os.environ.pop('IN_TEST', None)
        else: os.environ['IN_TEST'] = in_test


def process_nbs(dest: Path, nbs: Path = NBS, root: Path = ROOT) -> list[Path]:
    "Each notebook of `nbs` through `DocsFilter`, written to `dest`: what `nbdev_proc_nbs` writes to `_proc/`."
    from execnb.nbio import read_nb as read_execnb, write_nb
    dest = Path(dest); dest.mkdir(parents=True, exist_ok=True)
    written = []
    with nbdev_env(root):
        for p in notebooks(nbs):
            nb = read_execnb(p.resolve())
            try: DocsFilter()(nb)
            except Exception as e: raise RuntimeError(f'{p.name}: nbdev cannot make its page: {e}') from e
            write_nb(nb, dest / p.name); written.append(dest / p.name)
    return written

# ---------------------------------------------------------------- a processed notebook as nbconvert's input

_OPT = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')


def cell_options(src: str) -> tuple[dict, str]:
    "Quarto's `#| key: value` cell options at the top of `src` (values lower-cased) and the source without any `#|` line."
    lines, opts = src.splitlines(), {}
    while lines and _DIRECTIVE.match(lines[0]):
        if m := _OPT.match(lines[0]): opts[m.group(1)] = m.group(2).strip('"\'').lower()
        lines.pop(0)
    return opts, '\n'.join(lines)


def frontmatter(nb: dict) -> dict:
    "The YAML front matter nbdev's `FrontmatterProc` puts in a raw cell: title, description, output-file."
    import yaml
    for c in nb['cells']:
        if c['cell_type'] == 'raw' and (m := re.match(r'\s*---\s*\n(.*?)\n---\s*$', _src(c), re.S)):
            return yaml.safe_load(m.group(1)) or {}
    return {}


def _text(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')

_PANDOC_LINK = re.compile(r'\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}')


_FENCE = re.compile(r'^```.*?^```', re.M | re.S)


def md_fixup(md: str) -> str:
    """Markdown as mistune should read it: Pandoc's `[text](url){attrs}` (show_doc's source link) as an HTML link,
    and inside code blocks (show_doc's signatures) nbdev's links put back as the `name` they were made from."""
    md = _FENCE.sub(lambda m: re.sub(r'\[(`[^`\n]+`)\]\([^)\s]+\)', r'\1', m.group(0)), md)
    return _PANDOC_LINK.sub(lambda m: f'<a href="{m.group(2)}" {m.group(3)}>{m.group(1)}</a>', md)


def docstring_lines(md: str) -> str:
    """A `show_doc`'s docstring as laid out in the source: after the signature, each line of text kept on its own
    line (a Markdown hard break) and its indentation kept, where Markdown would run the lines into one paragraph."""
    sig = _FENCE.search(md)
    if not sig: return md
    def keep(text):
        lines = text.split('\n')
        return '\n'.join(re.sub(r'^( +)', lambda m: '&nbsp;' * len(m.group(1)), l) + ('  ' if l.strip() and i + 1 < len(lines)
                          and lines[i + 1].strip() else '') for i, l in enumerate(lines))
    tail, out, pos = md[sig.end():], [], 0
    for f in _FENCE.finditer(tail): out += [keep(tail[pos:f.start()]), f.group(0)]; pos = f.end()
    return md[:sig.end()] + ''.join(out) + keep(tail[pos:])


def page_cells(nb: dict) -> list[dict]:
    "The cells of a processed notebook as Quarto shows them: options applied, `output: asis` as markdown, title on top."
    fm, cells = frontmatter(nb), []
    if fm.get('title'): cells.append(_cell('markdown', f"# {fm['title']}" + (f"\n\n> {fm['description']}" if fm.get('description') else '')))
    for c in nb['cells']:
        if c['cell_type'] == 'markdown': cells.append(_cell('markdown', md_fixup(_src(c))))
        if c['cell_type'] != 'code': continue
        opts, src = cell_options(_src(c))
        if opts.get('include') == 'false': continue
        outs = [] if opts.get('output') == 'false' else c.get('outputs', [])
        show_src = bool(src.strip()) and opts.get('echo') != 'false'
        if opts.get('output') == 'asis':
            md = ''.join(_text(o.get('data', {}).get('text/markdown')) or _text(o.get('text')) for o in outs)
            if show_src: cells.append(_cell('code', src))
            if md.strip(): cells.append(_cell('markdown', md_fixup(docstring_lines(md))))
        elif show_src or outs:
            cells.append(_cell('code', src, outs, hide_src=not show_src))
    return cells


def _cell(kind, src, outputs=(), hide_src=False):
    import nbformat, nbformat.v4 as v4
    meta = {'transient': {'remove_source': True}} if hide_src else {}
    if kind == 'markdown': return v4.new_markdown_cell(src, metadata=meta)
    return v4.new_code_cell(src, metadata=meta, outputs=[nbformat.from_dict(o) for o in outputs])

# ---------------------------------------------------------------- pages: names, links, anchors

def page_name(nb_path: Path, fm: dict | None = None) -> str:
    "The page nbdev makes of a notebook: its front matter's `output-file`, else the name without its number prefix."
    if fm and fm.get('output-file'): return fm['output-file']
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', Path(nb_path).name.lower()).rsplit('.', 1)[0] + '.html'


def pandoc_id(text: str, seen: set) -> str:
    "The identifier Pandoc (hence Quarto, hence nbdev's links) gives a heading: lower case, `-` for spaces, unique."
    t = html.unescape(re.sub(r'<[^>]+>', '', text)).strip().lower()
    t = re.sub(r'^[^a-z]+', '', re.sub(r'\s+', '-', re.sub(r'[^\w\s.-]', '', t))) or 'section'
    new, i = t, 0
    while new in seen: i += 1; new = f'{t}-{i}'
    seen.add(new); return new


def pandoc_anchors(page: str) -> str:
    "nbconvert's heading ids replaced by Pandoc's, so that nbdev's links (`optimizers.html#bop2ndorder`) land."
    seen = set()
    def fix(m):
        inner = re.sub(r'<a class="anchor-link"[^>]*>.*?</a>', '', m.group(3), flags=re.S)
        i = pandoc_id(inner, seen)
        return f'<h{m.group(1)} id="{i}">{inner}<a class="anchor-link" href="#{i}">¶</a></h{m.group(1)}>'
    return re.sub(r'<h([1-6]) id="([^"]*)">(.*?)</h\1>', fix, page, flags=re.S)


def fix_href(url: str, pages: dict[str, str], site: str = '', source: tuple[str, str] = ('', '')) -> str:
    """A link as it works in the offline site: `[nbs/]xx.ipynb[#frag]` -> its page, a link into the published site
    (`site`, settings.ini's doc_host + doc_baseurl) -> relative, a source link (`source[0]`: git_url/blob/branch/)
    -> `source[1]` + the file's path; anything else unchanged."""
    if source[0] and url.startswith(source[0]): return source[1] + url[len(source[0]):]
    if site and url.startswith(site.rstrip('/') + '/'): return url[len(site.rstrip('/')) + 1:] or 'index.html'
    if re.match(r'^[a-z][a-z0-9+.-]*:|^#|^/', url, re.I): return url
    m = re.match(r'^(?:\./)?(?:nbs/)?([^/#?]+)\.ipynb(#.*)?$', url)
    return pages[m.group(1)] + (m.group(2) or '') if m and m.group(1) in pages else url


def fix_links(page: str, pages: dict[str, str], site: str = '', source: tuple[str, str] = ('', '')) -> str:
    "Rewrite every `href`/`src` of an HTML page with `fix_href`."
    return re.sub(r'(href|src)="([^"]*)"', lambda m: f'{m.group(1)}="{html.escape(fix_href(html.unescape(m.group(2)), pages, site, source))}"',
                  page)

# ---------------------------------------------------------------- the nbconvert builder

_CSS = ('<style>body{padding-left:16rem!important}nav.site{position:fixed;top:0;left:0;bottom:0;width:14rem;'
        'overflow:auto;padding:1rem;background:#f5f6f8;border-right:1px solid #dde;font-family:sans-serif}'
        'nav.site a{display:block;padding:.2rem 0;text-decoration:none}nav.site a.current{font-weight:700}'
        'nav.site .title{font-weight:700;font-size:1.2rem;margin-bottom:.6rem}'
        '.jp-RenderedMarkdown blockquote{border-left:none;padding-left:0;margin-left:0;font-size:1.15em;color:#555}'
        '.jp-RenderedHTMLCommon hr{margin:2em 0 1em}</style>')
# jupyter-server-mathjax ships MathJax 2.7 with the STIX-Web fonts only (no TeX fonts, no CommonHTML output)
_MATHJAX_CONFIG = ('<script type="text/x-mathjax-config">MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], '
                   'preferredFont: null, webFont: "STIX-Web", imageFont: null}});</script>')
MATHJAX_DIR = 'mathjax'


def copy_mathjax(out: Path) -> str:
    "MathJax from the `jupyter-server-mathjax` package into `out/mathjax/`; returns the URL pages load it from."
    import jupyter_server_mathjax
    src = Path(jupyter_server_mathjax.__file__).parent / 'static'
    def skip(d, names):   # not needed: other languages, the SVG output's font data
        d = Path(d)
        return [n for n in names if (d.name == 'localization' and n != 'en') or (d.name == 'output' and n == 'SVG')]
    shutil.rmtree(out / MATHJAX_DIR, ignore_errors=True)
    shutil.copytree(src, out / MATHJAX_DIR, ignore=skip)
    return f'{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe'


def _nav(site: str, pages: list[tuple[str, str]], current: str) -> str:
    "The sidebar: a link to every page, the current one in bold."
    links = ''.join(f'<a href="{f}"{" class=current" if f == current else ""}>{html.escape(_plain_title(t))}</a>'
                    for f, t in pages)
    return f'<nav class="site"><div class="title">{html.escape(site)}</div>{links}</nav>'


def settings(root: Path = ROOT) -> dict:
    "settings.ini's [DEFAULT] section."
    import configparser
    cp = configparser.ConfigParser(interpolation=None); cp.read(Path(root) / 'settings.ini')
    return dict(cp['DEFAULT'])


def build_nbconvert(out: Path, nbs: Path = NBS, root: Path = ROOT) -> list[Path]:
    "nbdev's processors (`process_nbs`), then nbconvert's HTML exporter (lab template) on each processed notebook."
    import nbformat
    from nbconvert import HTMLExporter
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        nbd = {p.stem: read_nb(p) for p in process_nbs(Path(tmp), nbs, root)}
    fms = {s: frontmatter(nb) for s, nb in nbd.items()}
    names = {s: page_name(Path(s + '.ipynb'), fms[s]) for s in nbd}
    if len(set(names.values())) < len(names):
        dup = sorted(s for s in names if list(names.values()).count(names[s]) > 1)
        raise ValueError(f'Notebooks {dup} would make the same page: rename one (nbdev drops the number prefix)')
    titles = {s: fms[s].get('title') or title_of(nbd[s], s) for s in nbd}
    cfg = settings(root)
    site = _plain_title(cfg.get('title') or titles.get(Path(README_NB).stem, 'docs'))
    pages = [(names[s], titles[s]) for s in sorted(nbd, key=lambda s: (names[s] != 'index.html', s))]   # as nbdev's sidebar
    doc_site = cfg.get('doc_host', '').rstrip('/') + cfg.get('doc_baseurl', '')
    source = (f"{cfg['git_url'].rstrip('/')}/blob/{cfg.get('branch', 'main')}/" if cfg.get('git_url') else '',
              Path(os.path.relpath(root, out.resolve())).as_posix() + '/')
    for p in out.glob('*.html'): p.unlink()          # only stale pages: never a whole folder that may hold other files
    exporter = HTMLExporter(template_name='lab', exclude_input_prompt=True, exclude_output_prompt=True,
                            mathjax_url=copy_mathjax(out))
    made = {}
    for s, nb in nbd.items():
        node = nbformat.from_dict({**nb, 'cells': page_cells(nb)})
        t = _plain_title(titles[s]); t = t if t == site else f'{t} – {site}'
        page, _ = exporter.from_notebook_node(node, resources={'metadata': {'name': t}})
        page = re.sub(r'<script src="[^"]*require[^"]*"></script>\s*', '', page)          # a CDN script, not needed
        page = page.replace('</head>', _MATHJAX_CONFIG + _CSS + '</head>', 1)
        page = pandoc_anchors(fix_links(page, names, doc_site, source))
        made[names[s]] = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + '\n' + _nav(site, pages, names[s]), page, count=1)
    made = unlink_dead_anchors(made)
    for name, page in made.items(): (out / name).write_text(page, encoding='utf-8')
    return [out / name for name in made]


def unlink_dead_anchors(pages: dict[str, str]) -> dict[str, str]:
    """nbdev links every backticked name it finds in its index, also where no heading documents it (a private
    helper, a method of a documented class, a name shared by two modules): such a link lands nowhere, so it becomes
    the plain code it was made from."""
    ids = {n: set(re.findall(r'\sid="([^"]*)"', p)) for n, p in pages.items()}
    def fix(m):
        target, _, frag = html.unescape(m.group(1)).partition('#')
        dead = target in pages and frag and frag not in ids[target]
        return m.group(2) if dead else m.group(0)
    return {n: re.sub(r'<a href="([^"#:]*\.html#[^"]*)"[^>]*>(.*?)</a>', fix, p, flags=re.S) for n, p in pages.items()}

# ---------------------------------------------------------------- the Quarto builder: nbdev_docs itself

@contextlib.contextmanager
def _patched(obj, name, value):
    old = getattr(obj, name); setattr(obj, name, value)
    try: yield
    finally: setattr(obj, name, old)


def build_quarto(out: Path, nbs: Path = NBS) -> list[Path]:
    """nbdev's own site: `nbdev_docs` (needs the Quarto binary) with `DocsFilter` as its processors, run in this
    process; then `_docs/` moved to `out`. README.md is made by `readme` from index.ipynb: the README that
    nbdev_docs renders on the way is put back, and the `_quarto.yml`/`sidebar.yml`/`nbdev.yml` it writes into nbs/
    are removed when they were not there before."""
    from nbdev import quarto, serve
    root = Path(nbs).resolve().parent                # the project folder: settings.ini, README.md, _docs/
    readme = root / 'README.md'
    before = readme.read_bytes() if readme.exists() else None
    created = [p for p in (Path(nbs) / f for f in ('_quarto.yml', 'sidebar.yml', 'nbdev.yml')) if not p.exists()]
    shutil.rmtree(root / '_proc', ignore_errors=True)   # nbdev's cache: pages made by other processors
    try:
        with nbdev_env(root), _patched(serve, 'FilterDefaults', DocsFilter):
            quarto.nbdev_docs.__wrapped__(path=str(Path(nbs).resolve()), n_workers=0)   # 0: in this process
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
