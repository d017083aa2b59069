"""The reproduction layer end to end, at tiny scale (1-epoch runs on 100 images):

- every reproduce/<table>.ipynb executes under papermill and writes a table with the
  expected rows and numbers;
- the runner, killed in the middle of a grid and started again, retrains nothing that
  finished and completes the table;
- a broken run fails alone: the others train, the exit code is nonzero and the failure
  is listed with its log.
"""
import ast, csv, importlib.util, json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

import papermill as pm  # a requirement of the package: no skip
from bnn_opt.repro.design import DESIGN, TABLES, make_run
from bnn_opt.repro.runner import run_grid
from bnn_opt.repro.report import execute_table, notebook_parameters

NB = Path(__file__).resolve().parents[1] / 'reproduce'

# the smallest grids that still hold every kind of row of each table
TINY = dict(bias_norm=dict(variants=['biased', 'scaled'], norms=['batch', 'layer']),
            ablation=dict(factors=[1.0, 10.0], sigma_factors=[10.0], variants=['scaled']),
            schedulers=dict(variants=['none', 'threshold'], bias_corrections=['scaled']),
            convergence=dict(presets=['bop', 'bop2ndorder']),
            cifar10=dict(presets=['bop_sec52', 'bop2ndorder_cifar']),
            imagenet=dict(models=['xnornet', 'birealnet'], presets=['bop2ndorder_imagenet']),
            pbop=dict(scalers=[10.0], references=['bop'], anneal=True))
ROWS = dict(bias_norm=4, ablation=4 + 1 + 4, schedulers=2, convergence=2, cifar10=2, imagenet=2, pbop=3)
ACC = 'final_test_acc'


def _rows(path):
    with open(path) as f: return list(csv.DictReader(f))


def _numeric(v):
    try: float(v); return True
    except (TypeError, ValueError): return False


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    "One results folder for the smoke tests, so that runs shared by tables train once."
    return tmp_path_factory.mktemp('tiny')


@pytest.mark.parametrize('table', TABLES)
def test_notebook_parameters_match_the_library(table):
    "The parameter cell's grid is the runner's (DESIGN): a notebook run by hand reads the runner's runs."
    params = pm.inspect_notebook(str(NB / f'{table}.ipynb'))
    for k, v in DESIGN[table].items():
        assert ast.literal_eval(params[k]['default']) == v, (table, k)
    for k in ('results_dir', 'scale', 'device', 'data', 'epochs', 'seeds', 'out_dir', 'launch'):
        assert k in params, (table, k)


@pytest.mark.parametrize('table', TABLES)
def test_notebook_smoke(table, shared):
    "Each table notebook trains its (tiny) grid inside the kernel and writes its table, markdown and figure."
    params = notebook_parameters(table, shared, 'tiny', jobs=0, launch=True, **TINY[table])
    execute_table(table, shared, params, nb_dir=NB)
    rows = _rows(shared / f'{table}.csv')
    assert len(rows) == ROWS[table], rows
    for r in rows:
        assert r['status'] == 'complete', r
        assert _numeric(r[ACC]) and 0 <= float(r[ACC]) <= 100, r
        assert _numeric(r['best_test_acc']), r
    md = (shared / f'{table}.md').read_text()
    assert '**tiny scale, ' in md and md.count('\n|') >= ROWS[table] + 1
    assert list(shared.glob(f'{table}*.png')) and (shared / f'{table}.ipynb').exists()
    if table == 'cifar10':
        assert [float(r['published']) for r in rows] == [91.3, 91.9]
    if table == 'imagenet':
        assert 'not ImageNet' in md and all(_numeric(r['final_test_top5']) for r in rows)
    if table == 'ablation':  # tiny runs are too short to warm up: every point is marked and left out of the spread
        rob = _rows(shared / 'ablation_robustness.csv')
        assert [r['optimizer'] for r in rob] == ['Bop2ndOrder, scaled', 'Bop'] and all(r['points'] == '0' for r in rob), rob
        assert all('not warmed up' in r['note'] for r in rows if r['optimizer'] == 'bop'), rows
    if table == 'convergence':
        assert all(_numeric(r['auc_test_acc']) and r['reached_40'] in ('0/1', '1/1') for r in rows), rows
    verdicts = shared / f'{table}_verdicts.csv'
    if verdicts.exists():  # one seed on a tiny test set: the rule draws no verdict
        assert {r['verdict'] for r in _rows(verdicts)} <= {'not resolved at this scale', 'no claim'}, _rows(verdicts)
        assert 'reproduced**' not in md


def _runner(out, *extra):
    return [sys.executable, '-m', 'bnn_opt.cli', 'reproduce', 'schedulers', '--scale', 'tiny', '--out', str(out), *extra]


def test_resume_after_kill(tmp_path):
    "Kill the runner (and its runs) after the first run finished; the rerun retrains nothing finished."
    out = tmp_path / 'r'
    p = subprocess.Popen(_runner(out, '--epochs', '2'), start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while not (done := sorted(out.glob('runs/*/summary.json'))) and time.time() - t0 < 150 and p.poll() is None:
            time.sleep(0.1)
        assert done, "no run finished"
        time.sleep(0.3)  # let it finish writing
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    first = done[0].parent
    assert len(done) < 3, "the whole grid finished before the kill"
    assert not (out / 'REPORT.md').exists()
    stamps = {f: f.stat().st_mtime_ns for f in (first / 'summary.json', first / 'metrics.csv', first / 'checkpoint.pt')}
    r = subprocess.run(_runner(out, '--epochs', '2'), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(f.stat().st_mtime_ns == t for f, t in stamps.items()), "a finished run was retrained"
    assert 'already complete' in (first / 'log.txt').read_text()
    assert f"{len(done)} already complete" in r.stdout
    rows = _rows(out / 'schedulers.csv')
    assert len(rows) == 6 and all(x['status'] == 'complete' and _numeric(x[ACC]) for x in rows), rows
    assert 'Report:' in r.stdout and (out / 'REPORT.md').exists()


def test_failed_run_is_isolated(tmp_path):
    "A run that crashes (corrupt checkpoint) fails alone: the others train, exit code 1, the failure listed."
    out = tmp_path / 'f'
    broken = out / 'runs' / 'bop2ndorder_testexp-nosched-s0'
    broken.mkdir(parents=True)
    (broken / 'checkpoint.pt').write_bytes(b'not a checkpoint')
    r = subprocess.run(_runner(out, '--jobs', '2'), capture_output=True, text=True, timeout=240)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'Failures:' in r.stdout and 'run bop2ndorder_testexp-nosched-s0' in r.stdout
    assert str(broken / 'log.txt') in r.stdout and 'is corrupt or unreadable' in (broken / 'log.txt').read_text()
    rows = {(x['variant'], x['schedule']): x for x in _rows(out / 'schedulers.csv')}
    assert rows['biased', 'no schedule']['status'] == 'failed'
    for k in rows.keys() - {('biased', 'no schedule')}:
        assert rows[k]['status'] == 'complete' and _numeric(rows[k][ACC]), k
    report = (out / 'REPORT.md').read_text()
    assert '## Failures' in report and 'bop2ndorder_testexp-nosched-s0' in report


def test_invalid_setting_fails_before_launch(tmp_path):
    "An invalid run is refused by the runner itself (no process started); the valid one trains in a subprocess."
    good = make_run('bop2ndorder', 'tiny')
    bad = ('broken', dict(good[1], threshold=-1.0))
    res = {o.run_id: o for o in run_grid([good, bad], tmp_path, jobs=1, log=lambda *a: None)}
    assert res[good[0]].status == 'trained' and res[good[0]].rc == 0
    assert res['broken'].status == 'failed' and 'Invalid threshold value' in res['broken'].message
    assert json.loads((tmp_path / 'runs' / 'broken' / 'runner.json').read_text())['error']


def test_gpu_slots_and_torchrun(tmp_path, monkeypatch):
    "With --gpus, one run per GPU slot; runs that want every GPU go through torchrun once the others are done (CPU stand-in)."
    import bnn_opt.repro.runner as rp
    from bnn_opt.repro.results import fake_imagenet
    monkeypatch.setattr(rp, '_wants_torchrun', lambda kw: kw.get('dataset') == 'imagenet')
    inet = make_run('bop_imagenet', 'tiny', model='birealnet', data=str(fake_imagenet(tmp_path, 'tiny')))
    runs = [inet, make_run('bop', 'tiny'), make_run('bop2ndorder', 'tiny')]
    lines = []
    res = {o.run_id: o for o in run_grid(runs, tmp_path, gpus=[0, 1], device='cpu', log=lines.append)}
    assert all(o.status == 'trained' for o in res.values()), res
    cmd = json.loads((tmp_path / 'runs' / inet[0] / 'runner.json').read_text())['cmd']
    assert 'torch.distributed.run' in cmd and '--nproc_per_node 2' in cmd
    assert json.loads((tmp_path / 'runs' / inet[0] / 'summary.json').read_text())['world_size'] == 2
    started = [l for l in lines if l.startswith('[')]
    assert started[-1].startswith(f'[3/3] {inet[0]}') and 'GPU 0,1' in started[-1]  # after the single-GPU runs
    assert {'GPU 0)' in ' '.join(started[:2]), 'GPU 1)' in ' '.join(started[:2])} == {True}


def test_paper_and_cpu_scales_never_substitute_data(tmp_path, monkeypatch, capsys):
    "Without CIFAR-10 (or ImageNet), paper and cpu scales stop before training: exit 2, one line saying how to supply it."
    import bnn_opt.data
    from bnn_opt.repro.reproduce import reproduce
    monkeypatch.setattr(bnn_opt.data, 'cifar10_available', lambda: False)
    for table, scale in (('cifar10', 'paper'), ('ablation', 'cpu'), ('all', 'cpu'), ('imagenet', 'paper')):
        assert reproduce(table, tmp_path / scale, scale) == 2, (table, scale)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ('--data DIR' in err[0] or '--imagenet-data DIR' in err[0]), err
        assert not (tmp_path / scale / 'runs').exists()


def test_short_unscheduled_run_is_a_prefix(tmp_path):
    "The convergence table's premise: without a schedule, a 1-epoch run is exactly the first epoch of a 2-epoch run."
    from bnn_opt.repro.design import config_of
    from bnn_opt.train import train
    for preset in ('bop', 'bop2ndorder'):
        rows = {}
        for n in (1, 2):
            _, kw = make_run(preset, 'tiny', epochs=n)
            train(config_of(dict(kw, threads=1)), tmp_path / f"{preset}{n}", progress=False, log=lambda *a, **k: None)
            with open(tmp_path / f"{preset}{n}" / 'metrics.csv') as f: rows[n] = list(csv.DictReader(f))
        keep = lambda r: {k: v for k, v in r.items() if k != 'epoch_seconds'}
        assert len(rows[2]) == 2 and keep(rows[1][0]) == keep(rows[2][0]), (preset, rows)
