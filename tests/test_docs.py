"""The docs: README.md is what nbs/index.ipynb makes of it, and `make docs` builds nbdev's site offline: a page per
notebook with the signatures `show_doc` makes (attached methods included), hidden cells hidden, math local."""
import html, importlib.util, inspect, json, os, re, stat, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('build_docs', ROOT / 'tools' / 'build_docs.py')
bd = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(bd)


def test_readme_is_made_from_index_notebook():
    made = bd.readme_text(ROOT / 'nbs' / 'index.ipynb').encode('utf-8')
    assert made == (ROOT / 'README.md').read_bytes(), \
        'README.md differs from nbs/index.ipynb: edit the notebook, then `make readme`'


def _hrefs(page): return set(re.findall(r'href="([^"]*)"', page))
def _ids(page): return set(re.findall(r'\sid="([^"]*)"', page))
def _text(page): return html.unescape(re.sub(r'<[^>]+>', '', page))


def _section(page, anchor):
    "The text of the page from the heading with id `anchor` to the next heading of the same level or above."
    m = re.search(rf'<h([1-6]) id="{re.escape(anchor)}">', page)
    assert m, f'no heading #{anchor}'
    end = re.compile(rf'<h[1-{m.group(1)}][ >]').search(page, m.end())
    return _text(page[m.start():end.start() if end else len(page)])


def _doc(page, name):
    "The section of `show_doc(name)`: the heading with Pandoc's id for `name` (`-1`, `-2`... if repeated) and the signature."
    short = name.split('.')[-1]
    for i in sorted(i for i in _ids(page) if re.fullmatch(re.escape(name.lower()) + r'(-\d+)?', i)):
        if f'def {short}(' in (d := _section(page, i)): return d
    raise AssertionError(f'no show_doc of {name}')


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The real site, built once with nbconvert (nbdev's processors run imports, exported and show_doc cells only)."
    out = tmp_path_factory.mktemp('site')
    assert bd.build_html(out, 'nbconvert') == 'nbconvert'
    return out


def test_site_has_a_page_per_notebook(site):
    nbs = sorted(p for p in (ROOT / 'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))
    assert len(nbs) > 5 and (ROOT / 'nbs' / 'index.ipynb') in nbs
    want = {p: re.sub(r'^\d+[a-zA-Z0-9]*_', '', p.stem.lower()) + '.html' for p in nbs}   # nbdev's page names
    assert sorted(p.name for p in site.glob('*.html')) == sorted(want.values())
    index = (site / 'index.html').read_text(encoding='utf-8')
    for nb, name in want.items():
        page = (site / name).read_text(encoding='utf-8')
        title = bd._plain_title(bd.title_of(bd.read_nb(nb), nb.stem))
        assert re.search(r'<title>[^<]*' + re.escape(html.escape(title, quote=False)), page), (nb.name, title)
        assert name in _hrefs(index), f'the sidebar of index.html does not link {name}'
        assert not re.search(r'(?m)^\s*#\|', _text(page)), f'{name}: a cell directive is shown'
        assert not re.search(r'<(?:script|img|link)[^>]+(?:src|href)="(?:https?:)?//', page), f'{name}: loads from the network'
        assert 'src="mathjax/MathJax.js' in page


def test_links_inside_the_site_land(site):
    "Every relative link (sidebar, nbdev's links to symbols, notebook links) names a page, and a heading there."
    pages = {p.name: p.read_text(encoding='utf-8') for p in site.glob('*.html')}
    bad = []
    for name, page in pages.items():
        for h in _hrefs(page):
            if re.match(r'^[a-z][a-z0-9+.-]*:|^/', h) or not h.split('#')[0].endswith('.html'): continue
            target, _, frag = h.partition('#')
            if target not in pages or (frag and frag not in _ids(pages[target])): bad.append(f'{name} -> {h}')
    assert not bad, bad


def test_optimizers_page_documents_bop2ndorder(site):
    from bnn_opt.optimizers import BitFlipOptimizer, Bop2ndOrder, attach_method
    page = (site / 'optimizers.html').read_text(encoding='utf-8')
    doc = _doc(page, 'Bop2ndOrder')
    sig = re.search(r'def Bop2ndOrder\((.*?)\n\):', doc, re.S)
    assert sig, doc[:500]
    for p in list(inspect.signature(Bop2ndOrder).parameters.values())[1:]:
        assert f'{p.name}:' in sig.group(1) and repr(p.default) in sig.group(1), (p.name, sig.group(1))
    assert inspect.getdoc(Bop2ndOrder).split('\n')[0] in doc
    # methods attached with attach_method have their own show_doc: heading, signature, docstring
    for m in ('add_param_group', 'load_state_dict'):
        d = _doc(page, f'BitFlipOptimizer.{m}')
        assert f'BitFlipOptimizer.{m}' in d and f'def {m}(' in d
        assert inspect.getdoc(getattr(BitFlipOptimizer, m)).split('\n')[0].replace('`', '')[:60] in d.replace('\xa0', ' ')
    # exported code is shown as its signature, not its source
    body = inspect.getsource(attach_method).split('\n')[4].strip()
    assert body and body not in _text(page)
    assert '#| export' not in page


# ---------------------------------------------------------------- the tool on a tiny project

def _nb(cells):
    return {'cells': [{'cell_type': t, 'id': f'{i:04d}', 'metadata': {}, 'source': s,
                       **({'outputs': [], 'execution_count': None} if t == 'code' else {})}
                      for i, (t, s) in enumerate(cells)],
            'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
            'nbformat': 4, 'nbformat_minor': 5}


@pytest.fixture
def tiny_nbs(tmp_path):
    "index + one notebook that link each other, hidden and exported cells, an attached method, a scratch notebook."
    d = tmp_path / 'nbs'; d.mkdir()
    (d / 'index.ipynb').write_text(json.dumps(_nb([
        ('code', '#| hide\nfrom tiny import *'),
        ('markdown', '# tiny_lib\n\n> Tiny.\n\nSee [the layers](nbs/01_a.ipynb#usage) and [again](01_a.ipynb).'),
        ('markdown', '## Use\n\n- one\n- two\n\n| a | b |\n|---|---|\n| `x` | $y_1$ |'),
        ('code', 'print(1)')])))
    (d / '01_a.ipynb').write_text(json.dumps(_nb([
        ('code', '#| default_exp a'), ('markdown', '# Layers A\n\n> Summary.'),
        ('code', '#| export\nfrom bnn_opt.optimizers import attach_method'),
        ('code', '#| export\ndef f(x:int=3, # the input\n     ):\n    "Return one."\n    return 1'),
        ('code', '#| export\nclass Greeter:\n    "Greets."'),
        ('code', '#| export\n@attach_method(Greeter)\ndef _hello(self, name:str):\n    "Say hello to `name`."\n    return name'),
        ('code', '#| hide\nsecret = 1'),
        ('code', 'import math\nassert never_defined, "a test cell: nbdev runs only its import"'),
        ('markdown', '## Usage\n\nBack to [home](index.ipynb).')])))
    (d / '_scratch.ipynb').write_text(json.dumps(_nb([('markdown', '# Scratch')])))
    return d


def test_tiny_site_pages_links_and_show_doc(tiny_nbs, tmp_path):
    out = tmp_path / 'site'
    bd.build_html(out, 'nbconvert', nbs=tiny_nbs)
    assert sorted(p.name for p in out.glob('*.html')) == ['a.html', 'index.html']
    index, a = [(out / f).read_text(encoding='utf-8') for f in ('index.html', 'a.html')]
    assert {'a.html#usage', 'a.html'} <= _hrefs(index) and 'index.html' in _hrefs(a)
    assert re.search(r'<title>Layers A – ', a) and 'usage' in _ids(a)
    ta = _text(a)
    assert 'secret' not in ta and 'tiny import' not in _text(index) and '#|' not in ta and 'return 1' not in ta
    assert 'def f(' in ta and '# the input' in ta and 'Return one.' in ta           # show_doc of the export
    assert 'greeter.hello' in _ids(a) and 'Greeter.hello' in ta and 'Say hello to' in ta   # the attached method
    assert '<table' in index and '<li>' in index and (out / 'mathjax' / 'MathJax.js').exists()


def test_attached_names():
    import ast
    tree = lambda s: ast.parse(s).body[0]
    assert bd.attached_name(tree('@attach_method(A)\ndef _hi(self): pass')) == 'A.hi'
    assert bd.attached_name(tree("@attach_method(m.A, 'step')\n@torch.no_grad()\ndef _s(self): pass")) == 'm.A.step'
    assert bd.attached_name(tree("@attach_method(A, name='go')\ndef _g(self): pass")) == 'A.go'
    assert bd.attached_name(tree('@staticmethod\ndef f(): pass')) is None


def test_docstring_layout_kept():
    md = '### f\n\n```python\ndef f(\n):\n```\n\n*First.*\n\nRule:\n    m <- g\nflip\n\n```python\nx = 1\ny\n```'
    out = bd.docstring_lines(md)
    assert out.startswith('### f\n\n```python\ndef f(\n):\n```') and 'Rule:  \n&nbsp;&nbsp;&nbsp;&nbsp;m <- g  \nflip\n' in out
    assert out.endswith('```python\nx = 1\ny\n```')


def test_quarto_builder_runs_nbdev_docs_with_our_processors(tiny_nbs, tmp_path, monkeypatch):
    """With Quarto, nbdev_docs builds the site from notebooks processed by `DocsFilter`; its README, _quarto.yml,
    sidebar.yml and nbdev.yml do not stay behind. A stand-in `quarto` writes what it was given as the pages."""
    root = tiny_nbs.parent
    cfg = (ROOT / 'settings.ini').read_text()
    (root / 'settings.ini').write_text(re.sub(r'(?m)^(lib_name|lib_path|repo) = .*$', r'\1 = tiny', cfg))
    (root / 'tiny').mkdir(); (root / 'tiny' / '__init__.py').write_text('')
    (root / 'README.md').write_text('ours\n')
    bin_ = tmp_path / 'bin'; bin_.mkdir(); q = bin_ / 'quarto'
    q.write_text(f'#!{sys.executable}\n' + inspect.getsource(_fake_quarto) + '_fake_quarto()\n')
    q.chmod(q.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv('PATH', f'{bin_}{os.pathsep}{os.environ["PATH"]}')
    assert bd.build_html(tmp_path / 'site', 'auto', nbs=tiny_nbs) == 'quarto'
    assert sorted(p.name for p in (tmp_path / 'site').glob('*.html')) == ['a.html', 'index.html']
    a = (tmp_path / 'site' / 'a.html').read_text()
    assert 'show_doc(Greeter.hello' in a and 'Say hello to' in a and 'never_defined' in a    # processed by DocsFilter
    assert (root / 'README.md').read_text() == 'ours\n' and not (root / '_docs').exists()
    assert not any((tiny_nbs / f).exists() for f in ('_quarto.yml', 'sidebar.yml', 'nbdev.yml'))


def _fake_quarto():
    "`quarto render [nb -o README.md]` in _proc/: each processed notebook's JSON as its page in _docs/."
    import json, re, sys
    from pathlib import Path
    args = sys.argv[1:]
    if '-o' in args:
        (Path('_docs')).mkdir(exist_ok=True); (Path('_docs') / args[args.index('-o') + 1]).write_text('quarto gfm\n')
        return
    for nb in Path('.').glob('*.ipynb'):
        out = Path('_docs') / (re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.stem.lower()) + '.html')
        out.parent.mkdir(exist_ok=True); out.write_text(json.dumps(json.loads(nb.read_text())))


def test_builder_choice(monkeypatch):
    monkeypatch.setattr(bd.shutil, 'which', lambda name: '/usr/local/bin/quarto' if name == 'quarto' else None)
    assert bd.choose_builder() == 'quarto'
    monkeypatch.setattr(bd.shutil, 'which', lambda name: None)
    assert bd.choose_builder() == 'nbconvert'
    for gone in ('pdf', 'plain'):
        with pytest.raises(ValueError, match=f'Invalid builder: `{gone}`'): bd.build_html(Path('unused'), gone)
