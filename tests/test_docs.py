"""The docs: README.md is what nbs/index.ipynb makes of it, and `make docs` builds a page per notebook, offline."""
import importlib.util, json, re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('build_docs', ROOT / 'tools' / 'build_docs.py')
bd = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(bd)

# the site is built with nbconvert (a dev requirement); nbdev_docs needs the Quarto binary, stubbed below


def test_readme_is_made_from_index_notebook():
    made = bd.readme_text(ROOT / 'nbs' / 'index.ipynb').encode('utf-8')
    assert made == (ROOT / 'README.md').read_bytes(), \
        'README.md differs from nbs/index.ipynb: edit the notebook, then `make readme`'


def _hrefs(page): return set(re.findall(r'href="([^"]*)"', page))


def test_site_has_a_page_per_notebook(tmp_path):
    assert bd.build_html(tmp_path, 'nbconvert') == 'nbconvert'
    nbs = bd.notebooks(ROOT / 'nbs')
    assert {p.stem for p in nbs} >= {'index'} and len(nbs) > 5
    assert sorted(p.name for p in tmp_path.glob('*.html')) == sorted(f'{p.stem}.html' for p in nbs)
    index = (tmp_path / 'index.html').read_text(encoding='utf-8')
    for p in nbs:
        page = (tmp_path / f'{p.stem}.html').read_text(encoding='utf-8')
        title = bd._plain_title(bd.title_of(bd.read_nb(p), p.stem))
        assert re.search(r'<title>[^<]*' + re.escape(bd.html.escape(title, quote=False)), page), (p.name, title)
        assert len(page) > 1000 and '#| export' not in page
        assert f'{p.stem}.html' in _hrefs(index), f'index.html does not link {p.stem}.html'
        assert not any(h.endswith('.ipynb') or '.ipynb#' in h for h in _hrefs(page)), f'{p.name}: link to a notebook'


def _nb(cells):
    return {'cells': [{'cell_type': t, 'id': f'{i:04d}', 'metadata': {}, 'source': s,
                       **({'outputs': [], 'execution_count': None} if t == 'code' else {})}
                      for i, (t, s) in enumerate(cells)],
            'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
            'nbformat': 4, 'nbformat_minor': 5}


@pytest.fixture
def tiny_nbs(tmp_path):
    "index + one notebook that link each other, a hidden cell, a directive, a scratch notebook."
    d = tmp_path / 'nbs'; d.mkdir()
    (d / 'index.ipynb').write_text(json.dumps(_nb([
        ('code', '#| hide\nfrom tiny import *'),
        ('markdown', '# tiny_lib\n\nSee [the layers](nbs/01_a.ipynb#usage) and [again](01_a.ipynb).'),
        ('markdown', '## Use\n\n- one\n- two\n\n| a | b |\n|---|---|\n| `x` | $y_1$ |'),
        ('code', 'print(1)')])))
    (d / '01_a.ipynb').write_text(json.dumps(_nb([
        ('code', '#| default_exp a'), ('markdown', '# Layers A\n\n> Summary.'),
        ('code', '#| export\ndef f(): return 1'), ('code', '#| hide\nsecret = 1'),
        ('markdown', '## Usage\n\nBack to [home](index.ipynb).')])))
    (d / '_scratch.ipynb').write_text(json.dumps(_nb([('markdown', '# Scratch')])))
    return d


def test_readme_text_skips_hidden_cells(tiny_nbs):
    assert bd.readme_text(tiny_nbs / 'index.ipynb') == (
        '# tiny_lib\n\nSee [the layers](nbs/01_a.ipynb#usage) and [again](01_a.ipynb).\n\n'
        '## Use\n\n- one\n- two\n\n| a | b |\n|---|---|\n| `x` | $y_1$ |\n\n```python\nprint(1)\n```\n')


def test_links_between_notebooks_become_links_between_pages(tiny_nbs, tmp_path):
    out = tmp_path / 'site'
    bd.build_html(out, 'nbconvert', nbs=tiny_nbs)
    assert sorted(p.name for p in out.glob('*.html')) == ['01_a.html', 'index.html']
    index, a = [(out / f).read_text(encoding='utf-8') for f in ('index.html', '01_a.html')]
    assert {'01_a.html#usage', '01_a.html'} <= _hrefs(index) and 'index.html' in _hrefs(a)
    assert '<title>tiny_lib</title>' in index and re.search(r'<title>Layers A – tiny_lib', a)
    assert 'secret' not in a and 'tiny import' not in index and '#|' not in a and 'def' in a
    assert '<table' in index and '<li>' in index


def test_quarto_builder_housekeeping(tiny_nbs, tmp_path, monkeypatch):
    "With Quarto, nbdev_docs builds the site; its README, _quarto.yml, sidebar.yml and nbdev.yml do not stay behind."
    (tmp_path / 'README.md').write_text('ours\n')
    def fake_nbdev_docs(cmd, cwd, check):
        assert Path(cmd[0]).name == 'nbdev_docs' and Path(cwd) == tmp_path
        (tmp_path / 'README.md').write_text('quarto gfm\n')
        for f in ('_quarto.yml', 'sidebar.yml', 'nbdev.yml'): (tiny_nbs / f).write_text('')
        (tmp_path / '_docs').mkdir()
        for p in bd.notebooks(tiny_nbs): (tmp_path / '_docs' / f'{p.stem}.html').write_text('<html></html>')
    monkeypatch.setattr(bd.subprocess, 'run', fake_nbdev_docs)
    bd.build_html(tmp_path / 'site', 'quarto', nbs=tiny_nbs)
    assert sorted(p.name for p in (tmp_path / 'site').glob('*.html')) == ['01_a.html', 'index.html']
    assert (tmp_path / 'README.md').read_text() == 'ours\n' and not (tmp_path / '_docs').exists()
    assert not any((tiny_nbs / f).exists() for f in ('_quarto.yml', 'sidebar.yml', 'nbdev.yml'))


def test_builder_choice(monkeypatch):
    monkeypatch.setattr(bd.shutil, 'which', lambda name: '/usr/local/bin/quarto' if name == 'quarto' else None)
    assert bd.choose_builder() == 'quarto'
    monkeypatch.setattr(bd.shutil, 'which', lambda name: None)
    assert bd.choose_builder() == 'nbconvert'
    for gone in ('pdf', 'plain'):
        with pytest.raises(ValueError, match=f'Invalid builder: `{gone}`'): bd.build_html(Path('unused'), gone)
