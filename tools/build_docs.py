"""Docs for bnn_opt, offline: README.md from `nbs/index.ipynb`, and an HTML site from `nbs/*.ipynb`.

    python tools/build_docs.py readme [--check]      # README.md <- the markdown of nbs/index.ipynb
    python tools/build_docs.py html [--out _docs]    # one HTML page per notebook, index.html from index.ipynb

The site is built by the first builder available: `quarto` (nbdev's own `nbdev_docs`, when the Quarto
binary is on PATH), `nbconvert` (when installed), else `plain`, a small renderer written here that needs
only the standard library (and Pygments, which IPython brings, for colours). No builder executes a
notebook: pages show the prose and the code as stored (notebooks are stored without outputs).
Links between notebooks (`02_optimizers.ipynb`, `nbs/02_optimizers.ipynb`) become links between pages.
"""
from __future__ import annotations

import argparse, html, json, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
README_NB = 'index.ipynb'
BUILDERS = ('quarto', 'nbconvert', 'plain')

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

# ---------------------------------------------------------------- plain builder: a small markdown renderer

def _code_html(code: str, lang: str = 'python') -> str:
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
        try: lexer = get_lexer_by_name(lang or 'text')
        except ClassNotFound: lexer = get_lexer_by_name('text')
        return highlight(code, lexer, HtmlFormatter(cssclass='highlight'))
    except ImportError:
        return f'<div class="highlight"><pre>{html.escape(code)}</pre></div>\n'


def _pygments_css() -> str:
    try:
        from pygments.formatters import HtmlFormatter
        return HtmlFormatter().get_style_defs('.highlight')
    except ImportError: return ''


_INLINE = re.compile(r'(?P<code>(`+)(?P<ctext>.+?)\2)'                     # `code`
                     r'|(?P<math>\$\$.+?\$\$|\$[^$\s](?:[^$]*?[^$\s])?\$)'    # $x$, $$x$$: kept as TeX
                     r'|(?P<img>!\[(?P<alt>[^\]]*)\]\((?P<isrc>[^)\s]+)\))'
                     r'|(?P<link>\[(?P<ltext>(?:[^\[\]]|\[[^\]]*\])+)\]\((?P<href>[^)\s]+)(?:\s+"[^"]*")?\))'
                     r'|(?P<auto><(?P<aurl>https?://[^>\s]+)>)', re.S)


def _emphasis(text: str) -> str:
    t = html.escape(text, quote=False)
    t = re.sub(r'\*\*(\S(?:.*?\S)?)\*\*', r'<strong>\1</strong>', t, flags=re.S)
    t = re.sub(r'(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])', r'<em>\1</em>', t, flags=re.S)
    return re.sub(r'(?<![\w\\])_(\S(?:.*?\S)?)_(?!\w)', r'<em>\1</em>', t, flags=re.S)


def inline(text: str, stems: set[str]) -> str:
    "Markdown inline syntax to HTML: code, TeX, images, links, bold and italics; the rest escaped."
    kept = []                                         # code, TeX and links first, so that emphasis may span them

    def keep(m):
        if m['code']: h = f'<code>{html.escape(m["ctext"].strip())}</code>'
        elif m['math']: h = f'<span class="math">{html.escape(m["math"])}</span>'
        elif m['img']: h = f'<img alt="{html.escape(m["alt"])}" src="{html.escape(m["isrc"])}">'
        elif m['link']: h = f'<a href="{html.escape(fix_href(m["href"], stems))}">{inline(m["ltext"], stems)}</a>'
        else: h = f'<a href="{html.escape(m["aurl"])}">{html.escape(m["aurl"])}</a>'
        kept.append(h); return f'\x00{len(kept) - 1}\x00'
    return re.sub(r'\x00(\d+)\x00', lambda m: kept[int(m[1])], _emphasis(_INLINE.sub(keep, text)))


_FENCE = re.compile(r'^ {0,3}(```+|~~~+)\s*([\w+-]*)')
_HEADING = re.compile(r'^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
_ITEM = re.compile(r'^( {0,3})([-*+]|\d{1,9}[.)])( +|$)')
_TABLE_SEP = re.compile(r'^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$')


def _slug(text: str) -> str:
    return re.sub(r'[^\w]+', '-', re.sub(r'<[^>]+>', '', text).lower()).strip('-')


def _starts_block(line: str, nxt: str | None) -> bool:
    return bool(_FENCE.match(line) or _HEADING.match(line) or line.lstrip().startswith(('>', '$$'))
                or (m := _ITEM.match(line)) and (not m[2][0].isdigit() or m[2][:-1] == '1')
                or line.lstrip().startswith('|') and nxt is not None and _TABLE_SEP.match(nxt))


def _cells(row: str) -> list[str]:
    row = row.strip()
    row = row[1:] if row.startswith('|') else row
    row = row[:-1] if row.endswith('|') and not row.endswith('\\|') else row
    return [c.strip().replace('\\|', '|') for c in re.split(r'(?<!\\)\|', row)]


def markdown(text: str, stems: set[str] = frozenset()) -> str:
    "The markdown used in these notebooks to HTML: headings, paragraphs, lists, tables, quotes, code, TeX."
    lines, out, i = text.splitlines(), [], 0
    nxt = lambda j: lines[j + 1] if j + 1 < len(lines) else None
    while i < len(lines):
        line = lines[i]
        if not line.strip(): i += 1; continue
        if m := _FENCE.match(line):                                   # ```lang ... ```
            fence, body, i = m[1], [], i + 1
            while i < len(lines) and not lines[i].strip().startswith(fence): body.append(lines[i]); i += 1
            out.append(_code_html('\n'.join(body) + '\n', m[2] or 'text')); i += 1
        elif line.startswith('    '):                                  # indented code
            body = []
            while i < len(lines) and (lines[i].startswith('    ') or not lines[i].strip()): body.append(lines[i][4:]); i += 1
            out.append(_code_html('\n'.join(body).rstrip('\n') + '\n', 'python'))
        elif m := _HEADING.match(line):
            h = inline(m[2], stems); n = len(m[1])
            out.append(f'<h{n} id="{_slug(h)}">{h}</h{n}>'); i += 1
        elif line.lstrip().startswith('$$'):                          # display TeX, kept as written
            body, i = [line], i + 1
            closed = len(line.strip()) > 2 and line.rstrip().endswith('$$')
            while not closed and i < len(lines):                      # up to the closing $$
                body.append(lines[i]); closed = lines[i].rstrip().endswith('$$'); i += 1
            out.append(f'<div class="math">{html.escape(chr(10).join(body))}</div>')
        elif line.lstrip().startswith('>'):
            body = []
            while i < len(lines) and lines[i].strip() and (lines[i].lstrip().startswith('>') or body):
                if not lines[i].lstrip().startswith('>') and _starts_block(lines[i], nxt(i)): break
                body.append(re.sub(r'^\s*> ?', '', lines[i])); i += 1
            out.append(f'<blockquote>{markdown(chr(10).join(body), stems)}</blockquote>')
        elif line.lstrip().startswith('|') and nxt(i) is not None and _TABLE_SEP.match(nxt(i)):
            head, i, rows = _cells(line), i + 2, []
            while i < len(lines) and lines[i].lstrip().startswith('|'): rows.append(_cells(lines[i])); i += 1
            th = ''.join(f'<th>{inline(c, stems)}</th>' for c in head)
            trs = ''.join('<tr>' + ''.join(f'<td>{inline(c, stems)}</td>' for c in r) + '</tr>\n' for r in rows)
            out.append(f'<table>\n<thead><tr>{th}</tr></thead>\n<tbody>\n{trs}</tbody>\n</table>')
        elif _ITEM.match(line):
            i = _list(lines, i, out, stems)
        else:                                                          # paragraph
            body = [line]; i += 1
            while i < len(lines) and lines[i].strip() and not _starts_block(lines[i], nxt(i)):
                body.append(lines[i]); i += 1
            out.append(f'<p>{inline(chr(10).join(s.strip() for s in body), stems)}</p>')
    return '\n'.join(out)


def _list(lines, i, out, stems) -> int:
    "A bullet or numbered list from line `i`; items may hold indented paragraphs and sub-lists."
    first = _ITEM.match(lines[i]); ordered = first[2][0].isdigit(); indent = len(first[1])
    items, width = [], 0
    while i < len(lines):
        line = lines[i]
        m = _ITEM.match(line)
        if m and len(m[1]) == indent and m[2][0].isdigit() == ordered:
            width = len(m[0]) if m[3] else len(m[0]) + 1
            items.append([line[len(m[0]):]]); i += 1
        elif not line.strip():                                         # a blank line ends the list unless indented text follows
            j = i
            while j < len(lines) and not lines[j].strip(): j += 1
            if j < len(lines) and (len(lines[j]) - len(lines[j].lstrip()) >= width
                                   or (m := _ITEM.match(lines[j])) and len(m[1]) == indent):
                items[-1].extend([''] * (j - i)); i = j
            else: break
        elif len(line) - len(line.lstrip()) >= width: items[-1].append(line[width:]); i += 1
        elif _starts_block(line, lines[i + 1] if i + 1 < len(lines) else None): break
        else: items[-1].append(line.strip()); i += 1                   # lazy continuation
    lis = []
    for item in items:
        body = markdown('\n'.join(item), stems)
        if body.count('<p>') == 1 and body.startswith('<p>'): body = body.replace('<p>', '', 1).replace('</p>', '', 1)
        lis.append(f'<li>{body}</li>')
    start = int(first[2][:-1]) if ordered else 1
    tag = 'ol' if ordered else 'ul'
    out.append(f'<{tag}{f" start={start}" if ordered and start != 1 else ""}>\n' + '\n'.join(lis) + f'\n</{tag}>')
    return i


def _outputs_html(cell, stems) -> str:
    "Stored outputs, if any (notebooks are usually stored without them)."
    parts = []
    for o in cell.get('outputs', []):
        data = o.get('data', {})
        txt = lambda v: ''.join(v) if isinstance(v, list) else v
        if o.get('output_type') == 'stream': parts.append(f'<pre class="output">{html.escape(txt(o.get("text", "")))}</pre>')
        elif 'image/png' in data: parts.append(f'<img class="output" src="data:image/png;base64,{txt(data["image/png"]).strip()}">')
        elif 'text/html' in data: parts.append(f'<div class="output">{txt(data["text/html"])}</div>')
        elif 'text/markdown' in data: parts.append(f'<div class="output">{markdown(txt(data["text/markdown"]), stems)}</div>')
        elif 'text/plain' in data: parts.append(f'<pre class="output">{html.escape(txt(data["text/plain"]))}</pre>')
    return '\n'.join(parts)


def plain_body(nb: dict, stems: set[str]) -> str:
    "A notebook's visible cells as HTML, markdown rendered and code highlighted, nothing executed."
    parts = []
    for cell, kind, src in visible_cells(nb):
        if kind == 'markdown': parts.append(f'<div class="md">{markdown(src, stems)}</div>')
        else: parts.append(f'<div class="code">{_code_html(src.strip(chr(10)) + chr(10))}{_outputs_html(cell, stems)}</div>')
    return '\n'.join(parts)


_CSS = """
body{margin:0;font:16px/1.55 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2125}
nav{position:fixed;top:0;left:0;bottom:0;width:15rem;overflow:auto;padding:1rem;background:#f5f6f8;border-right:1px solid #dde}
nav a{display:block;padding:.2rem 0;color:#234;text-decoration:none} nav a.current{font-weight:700}
nav .site{font-size:1.2rem;font-weight:700;margin-bottom:.6rem}
main{margin-left:17rem;padding:1rem 2rem 4rem;max-width:52rem}
@media (max-width:50rem){nav{position:static;width:auto;border:0}main{margin:0}}
code{background:#f0f1f3;padding:0 .2em;border-radius:3px;font-size:.92em}
.highlight{background:#f7f7f9;border:1px solid #e3e3e8;border-radius:4px;padding:0 .7rem;overflow:auto}
.highlight pre{margin:.5rem 0} .code{margin:.8rem 0}
blockquote{margin:0 0 1rem;padding:.2rem 1rem;border-left:4px solid #9ab;color:#456}
table{border-collapse:collapse;margin:1rem 0} th,td{border:1px solid #ccd;padding:.25rem .5rem;vertical-align:top}
.math{font-family:serif} div.math{margin:1rem 0;overflow:auto;white-space:pre-wrap}
pre.output{background:#fff;border-left:3px solid #ccd;padding:.3rem .7rem;overflow:auto}
"""


def _nav(site: str, pages: list[tuple[str, str]], current: str) -> str:
    links = ''.join(f'<a href="{s}.html"{" class=current" if s == current else ""}>{html.escape(_plain_title(t))}</a>'
                    for s, t in pages)
    return f'<nav><div class="site">{html.escape(site)}</div>{links}</nav>'


def _page(title: str, site: str, nav: str, body: str, css: str) -> str:
    t = html.escape(_plain_title(title) if title == site else f'{_plain_title(title)} – {site}')
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{t}</title>\n'
            f'<style>{css}</style>\n</head>\n<body>\n{nav}\n<main>\n{body}\n</main>\n</body>\n</html>\n')

# ---------------------------------------------------------------- the builders

def _site(nbs: Path):
    nbp = notebooks(nbs)
    nbd = {p.stem: read_nb(p) for p in nbp}
    titles = {s: title_of(nb, s) for s, nb in nbd.items()}
    # the index first, then the notebooks in order, as nbdev's sidebar lists them
    order = sorted(titles, key=lambda s: (s != Path(README_NB).stem, s))
    site = _plain_title(titles.get(Path(README_NB).stem, 'docs'))
    return nbd, titles, [(s, titles[s]) for s in order], site


def _clean_out(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    for p in out.glob('*.html'): p.unlink()          # only stale pages: never a whole folder that may hold other files


def build_plain(out: Path, nbs: Path = NBS) -> list[Path]:
    "Build the site with the renderer above (standard library; Pygments for colours when present)."
    nbd, titles, pages, site = _site(nbs); _clean_out(out)
    css, stems, written = _CSS + _pygments_css(), set(nbd), []
    for stem, nb in nbd.items():
        page = _page(titles[stem], site, _nav(site, pages, stem), plain_body(nb, stems), css)
        (out / f'{stem}.html').write_text(page, encoding='utf-8'); written.append(out / f'{stem}.html')
    return written


def build_nbconvert(out: Path, nbs: Path = NBS) -> list[Path]:
    "Build the site with nbconvert's HTML exporter (lab template), hidden cells and directives removed, nothing executed."
    import nbformat
    from nbconvert import HTMLExporter
    nbd, titles, pages, site = _site(nbs); _clean_out(out)
    exporter = HTMLExporter(template_name='lab', exclude_input_prompt=True, exclude_output_prompt=True)
    stems, written = set(nbd), []
    for stem in nbd:
        nb = nbformat.read(Path(nbs) / f'{stem}.ipynb', as_version=4)
        cells = []
        for cell in nb.cells:
            if is_hidden(cell): continue
            if cell.cell_type == 'code': cell.source = split_directives(_src(cell))[1]
            if _src(cell).strip(): cells.append(cell)
        nb.cells = cells
        t = _plain_title(titles[stem])
        body, _ = exporter.from_notebook_node(nb, resources={'metadata': {'name': t if t == site else f'{t} – {site}'}})
        nav = _nav(site, pages, stem)
        style = ('<style>body{padding-left:16rem!important}nav{position:fixed;top:0;left:0;bottom:0;width:14rem;'
                 'overflow:auto;padding:1rem;background:#f5f6f8;border-right:1px solid #dde;font-family:system-ui,sans-serif}'
                 'nav a{display:block;padding:.2rem 0;text-decoration:none}nav a.current{font-weight:700}'
                 'nav .site{font-weight:700;font-size:1.2rem;margin-bottom:.6rem}</style>')
        body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + '\n' + style + nav, fix_links(body, stems), count=1)
        (out / f'{stem}.html').write_text(body, encoding='utf-8'); written.append(out / f'{stem}.html')
    return written


def build_quarto(out: Path, nbs: Path = NBS) -> list[Path]:
    """Build nbdev's own site with `nbdev_docs` (needs the Quarto binary), then move `_docs/` to `out`.
    README.md is made by `readme` from index.ipynb: the README that nbdev_docs renders on the way is put back, and
    the `_quarto.yml`/`sidebar.yml` it writes into nbs/ are removed when they were not there before."""
    root = Path(nbs).resolve().parent                # the project folder: settings.ini, README.md, _docs/
    readme = root / 'README.md'
    before = readme.read_bytes() if readme.exists() else None
    created = [p for p in (Path(nbs) / '_quarto.yml', Path(nbs) / 'sidebar.yml') if not p.exists()]
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
    "`quarto` when the Quarto binary is on PATH, else `nbconvert` when installed, else `plain`."
    if shutil.which('quarto'): return 'quarto'
    try:
        import nbconvert  # noqa: F401
        return 'nbconvert'
    except ImportError: return 'plain'


def build_html(out: Path = ROOT / '_docs', builder: str = 'auto', nbs: Path = NBS) -> str:
    "Build the site into `out` with `builder` (`auto`: `choose_builder()`); returns the builder used."
    builder = choose_builder() if builder == 'auto' else builder
    if builder not in BUILDERS: raise ValueError(f"Invalid builder: `{builder}` (one of auto, {', '.join(BUILDERS)})")
    {'quarto': build_quarto, 'nbconvert': build_nbconvert, 'plain': build_plain}[builder](Path(out), Path(nbs))
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
