"""End-to-end checks of the training command: determinism across processes and DDP under torchrun."""
import csv, json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
TRAIN = ['--dataset', 'digits', '--width', '4', '--subset', '200', '--epochs', '2', '--batch-size', '50',
         '--preset', 'bop2ndorder', '--set', 'gamma=1e-3', '--set', 'sigma=1e-2', '--device', 'cpu', '--no-progress']


def _rows(run):
    with open(run / 'metrics.csv') as f:
        return [{k: v for k, v in r.items() if k != 'epoch_seconds'} for r in csv.DictReader(f)]


def _cli(*args, **kw):
    return subprocess.run([sys.executable, '-m', 'bnn_opt.cli', 'train', *args], env=ENV, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, **kw)


def test_same_seed_same_metrics(tmp_path):
    for name in ('a', 'b'):
        r = _cli(*TRAIN, '--seed', '3', '--out', str(tmp_path / name))
        assert r.returncode == 0, r.stderr
    assert _rows(tmp_path / 'a') == _rows(tmp_path / 'b')
    cfg = json.loads((tmp_path / 'a' / 'config.json').read_text())
    assert cfg['config']['seed'] == 3
    r = _cli(*TRAIN, '--seed', '4', '--out', str(tmp_path / 'c'))
    assert r.returncode == 0, r.stderr
    assert _rows(tmp_path / 'c') != _rows(tmp_path / 'a')


def test_corrupt_checkpoint_is_reported(tmp_path):
    run = tmp_path / 'run'
    r = _cli(*TRAIN, '--stop-after', '1', '--out', str(run))
    assert r.returncode == 0, r.stderr
    (run / 'checkpoint.pt').write_bytes(b'\x00garbage')
    r = _cli(*TRAIN, '--out', str(run))
    assert r.returncode == 2
    assert 'is corrupt or unreadable' in r.stderr and 'checkpoint.pt' in r.stderr


def test_missing_data_folder_is_reported(tmp_path):
    r = _cli('--dataset', 'cifar10', '--data', str(tmp_path / 'nowhere'), '--epochs', '1', '--out', str(tmp_path / 'run'))
    assert r.returncode == 2
    assert 'nowhere' in r.stderr


def test_ddp_two_ranks_stay_identical(tmp_path):
    """Two gloo ranks, different data shards: DDP-averaged gradients give identical flips on both ranks."""
    out = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '-m', 'bnn_opt.cli', 'train', *TRAIN, '--out', str(out)]
    r = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = json.loads((out / 'summary.json').read_text())
    assert s['complete'] and s['world_size'] == 2
    cs = s['rank_weight_checksums']
    assert len(cs) == 2 and cs[0] == cs[1]
    rows = _rows(out)
    assert len(rows) == 2 and float(rows[0]['flip_ratio']) > 0


COMPILE_CHECK = r'''
import copy, torch
from bnn_opt import quantizers
from bnn_opt.models import binarynet
torch.manual_seed(0)
eager = binarynet(filters=4, dense_units=16)
compiled_net = copy.deepcopy(eager)
x = torch.randn(8, 3, 32, 32)
assert not quantizers._NEXT_UP  # a cold start: nothing cached by an earlier eager backward
compiled = torch.compile(compiled_net, fullgraph=True)  # fullgraph: any graph break is an error
out_c = compiled(x); out_c.square().sum().backward()
out_e = eager(x); out_e.square().sum().backward()
torch.testing.assert_close(out_c, out_e, rtol=1e-5, atol=1e-5)
for (n, p), q in zip(eager.named_parameters(), compiled_net.parameters()):
    torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-5, msg=n)
print('compiled ok')
'''


def test_compile_binarynet_fullgraph_from_cold_start():
    """torch.compile(BinaryNet, fullgraph=True) traces forward and backward (ste_sign's backward included) in a fresh
    process and matches eager."""
    r = subprocess.run([sys.executable, '-c', COMPILE_CHECK], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and 'compiled ok' in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]


def test_train_eval_changes_no_other_column(tmp_path):
    "Eval-mode train accuracy is a measurement: a run with it on trains exactly as one with it off."
    off, on = tmp_path / 'off', tmp_path / 'on'
    for run, extra in ((off, []), (on, ['--set', 'train_eval=60'])):
        r = _cli(*TRAIN, '--seed', '2', *extra, '--out', str(run))
        assert r.returncode == 0, r.stderr
    rows_off, rows_on = _rows(off), _rows(on)
    assert 'train_eval_acc' not in rows_off[0] and 'train_eval_acc' in rows_on[0]
    assert [{k: v for k, v in r.items() if k != 'train_eval_acc'} for r in rows_on] == rows_off
    assert all(0 < float(r['train_eval_acc']) <= 1 for r in rows_on)
    assert json.loads((on / 'summary.json').read_text())['final_train_eval_acc'] == float(rows_on[-1]['train_eval_acc'])


def test_test_subset_from_the_command_line(tmp_path):
    r = _cli(*TRAIN, '--epochs', '1', '--set', 'test_subset=0', '--out', str(tmp_path / 'all'))
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / 'all' / 'config.json').read_text())
    assert (info['n_train'], info['n_test'], info['config']['test_subset']) == (200, 360, 0)   # all test images beside 200
    for bad, says in (('test_subset=-1', 'Invalid test_subset value: `-1`'), ('train_eval=201', 'Invalid train_eval value: `201`')):
        r = _cli(*TRAIN, '--set', bad, '--out', str(tmp_path / 'bad'))
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
