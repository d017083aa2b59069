"""The `bnn-opt` command as a user meets it: bad inputs, Ctrl-C, extending a finished run, and a run folder that
cannot lie (one writer at a time, settings and data checked, disk full, SIGTERM while a checkpoint is written)."""
import contextlib, csv, errno, hashlib, io, json, os, shutil, signal, stat, subprocess, sys, time
from pathlib import Path

import pytest
import torch

from bnn_opt.cli import main
from bnn_opt.data import make_fake_imagefolder
from bnn_opt.files import LOCK_FILE
from bnn_opt.runfolder import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
TINY = ['--preset', 'bop2ndorder', '--set', 'gamma=1e-3', '--width', '4', '--subset', '100', '--batch-size', '50',
        '--device', 'cpu', '--threads', '1', '--no-progress']


def cli(*argv):
    "(exit status, stdout, stderr) of `bnn-opt argv`, run in this process."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: rc = main([str(a) for a in argv])
        except SystemExit as e: rc = e.code
    return rc, out.getvalue(), err.getvalue()


def snapshot(folder: Path) -> dict:
    "Every file under `folder` (the lock file aside: each command that may write the folder takes it) with its digest and mtime."
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob('*')) if p.is_file() and p.name != LOCK_FILE}


def rows(run: Path) -> list:
    with open(run / 'metrics.csv') as f:
        return [{k: v for k, v in r.items() if k != 'epoch_seconds'} for r in csv.DictReader(f)]


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    "A finished 2-epoch run and a packed export of it; a run stopped after the first of 2 epochs."
    d = tmp_path_factory.mktemp('cli')
    rc, _, err = cli('train', *TINY, '--epochs', '2', '--out', d / 'run')
    assert rc == 0, err
    rc, _, err = cli('export', d / 'run', '--out', d / 'model.bnn.safetensors')
    assert rc == 0, err
    rc, _, err = cli('train', *TINY, '--epochs', '2', '--stop-after', '1', '--out', d / 'partial')
    assert rc == 0, err
    (d / 'a_file').write_text('not a folder')
    return d


# (arguments, a fragment the one-line message must contain); RUN is the finished run, NEW a folder that does not exist
BAD = [
    (['train', '--model', 'resnet', '--out', 'NEW'], "invalid choice: 'resnet'"),
    (['train', '--norm', 'group', '--out', 'NEW'], "invalid choice: 'group'"),
    (['train', '--dataset', 'mnist', '--out', 'NEW'], "invalid choice: 'mnist'"),
    (['train', '--preset', 'bop3', '--out', 'NEW'], "invalid choice: 'bop3'"),
    (['train', '--width', 'abc', '--out', 'NEW'], "invalid int value: 'abc'"),
    (['train', '--out'], "expected one argument"),
    (['train', '--epochs', '2'], "the following arguments are required: --out"),
    (['frobnicate'], "invalid choice: 'frobnicate'"),
    (['train', '--width', '0', '--out', 'NEW'], "Invalid width value: `0`"),
    (['train', '--subset', '0', '--out', 'NEW'], "Invalid subset value: `0` (must be an integer >= 1: the number of training images"),
    (['train', '--epochs', '0', '--out', 'NEW'], "Invalid epochs value: `0`"),
    (['train', '--batch-size', '-5', '--out', 'NEW'], "Invalid batch_size value: `-5`"),
    (['train', '--seed', '-1', '--out', 'NEW'], "Invalid seed value: `-1`"),
    (['train', '--device', 'tpu', '--out', 'NEW'], "Invalid device value: `'tpu'` (use auto, cpu, cuda or cuda:N)"),
    (['train', '--threads', '0', '--out', 'NEW'], "Invalid threads value: `0`"),
    (['train', '--stop-after', '0', '--out', 'NEW'], "Invalid --stop-after value: `0`"),
    (['train', '--set', 'threshold', '--out', 'NEW'], "Invalid --set value: `threshold` (expected KEY=VALUE"),
    (['train', '--set', 'tau=1', '--out', 'NEW'], "Unknown setting: `tau`"),
    (['train', '--set', 'optimizer=sgd', '--out', 'NEW'], "Invalid optimizer value: `'sgd'`"),
    (['train', '--set', 'gamma=2', '--out', 'NEW'], "Invalid gamma value: `2`"),
    (['train', '--set', 'threshold=-1', '--out', 'NEW'], "Invalid threshold value: `-1`"),
    (['train', '--set', 'bias_correction=unbiased', '--out', 'NEW'], "Invalid bias_correction value: `'unbiased'`"),
    (['train', '--set', 'amp=maybe', '--out', 'NEW'], "Invalid amp value: `'maybe'`"),
    (['train', '--preset', 'bop', '--set', 'bias_correction=scaled', '--out', 'NEW'],
     "Setting `bias_correction` (given) is not read by optimizer `bop`: only optimizers bop2ndorder, pbop read it"),
    (['train', '--preset', 'bop', '--set', 'sigma=1e-3', '--out', 'NEW'], "Setting `sigma` (given) is not read by optimizer `bop`"),
    (['train', '--preset', 'bop2ndorder', '--set', 'scaler=100', '--out', 'NEW'], "only optimizers pbop read it"),
    (['train', '--preset', 'bop2ndorder', '--set', 'optimizer=bop', '--out', 'NEW'],
     "Setting `sigma` (preset `bop2ndorder`) is not read by optimizer `bop`"),
    (['train', '--set', 'l2=1e-5', '--out', 'NEW'], "Setting `l2` (given) is not read by model `binarynet`: only model xnornet"),
    (['train', '--data', 'NEW', '--out', 'NEW'], "Setting `data` (given) is not read by dataset `digits`"),
    (['train', '--model', 'binarynet', '--dataset', 'imagenet', '--out', 'NEW'], "BinaryNet is the CIFAR-10 network"),
    (['train', '--set', 'schedules={"lr": {"type": "cosine"}}', '--out', 'NEW'], "Invalid schedule type: `cosine`"),
    (['train', '--preset', 'bop', '--set', 'schedules={"sigma": {"type": "linear", "end": 1}}', '--out', 'NEW'],
     "Invalid schedule key: `sigma`"),
    (['train', *TINY, '--epochs', '2', '--out', 'FILE'], "Invalid --out value: "),
    (['train', *TINY, '--epochs', '2', '--out', 'FILE/run'], "Cannot create the --out folder"),
    (['train', *TINY, '--epochs', '2', '--set', 'sigma=1e-2', '--out', 'RUN'], "holds a run with other settings {'sigma': (0.001, 0.01)}"),
    (['train', *TINY, '--epochs', '1', '--out', 'RUN'], "cannot shorten it"),
    (['train', '--dataset', 'cifar10', '--data', 'NEW/nowhere', '--epochs', '1', '--out', 'NEW2'], "nowhere"),
    (['export', 'NEW', '--out', 'NEW2'], "not found"),
    (['evaluate', 'NEW.onnx', '--dataset', 'digits'], "new.onnx` not found"),
    (['evaluate', 'MODEL', '--dataset', 'digits', '--batch-size', '0'], "Invalid --batch-size value: `0`"),
    (['reproduce', 'table9', '--out', 'NEW'], "invalid choice: 'table9'"),
    # the preset has its own option; schedules are checked at every epoch boundary before anything runs
    (['train', '--set', 'preset=BOP2NDORDER', '--out', 'NEW'], "Invalid setting `preset=BOP2NDORDER`: a preset is chosen with its own option"),
    (['train', '--set', 'preset=bop', '--out', 'NEW'], "Invalid setting `preset=bop`"),
    (['train', '--preset', 'bop', '--epochs', '10', '--set',
      'schedules={"gamma": {"type": "exponential", "decay_rate": 10, "decay_epochs": 1}}', '--out', 'NEW'],
     "Invalid schedule for `gamma`: its value at the start of epoch 5 of 10 would be `10`"),
    (['train', '--preset', 'bop', '--epochs', '5', '--set', 'schedules={"threshold": {"type": "linear", "end": -1e-6}}',
      '--out', 'NEW'], "Invalid schedule for `threshold`: its value at the start of epoch 4 of 5 would be `-2e-07`"),
    (['train', *TINY, '--epochs', '2', '--set', 'preset=bop', '--out', 'RUN'], "Invalid setting `preset=bop`"),
    # export and evaluate
    (['export', 'PARTIAL', '--out', 'NEW.safetensors'], "is an unfinished run (its checkpoint holds epoch 1 of 2"),
    (['evaluate', 'MODEL', '--dataset', 'cifar10'], "was trained on digits, not cifar10: evaluate it on its own data set"),
]


def test_bad_inputs_exit_2_with_one_line(finished, tmp_path):
    "Each bad input: exit status 2, a short message naming the problem, no traceback; the finished run is untouched."
    run, before = finished / 'run', snapshot(finished / 'run')
    assert len(BAD) >= 25
    names = dict(RUN=run, FILE=finished / 'a_file', MODEL=finished / 'model.bnn.safetensors', NEW=tmp_path / 'new',
                 NEW2=tmp_path / 'new2', PARTIAL=finished / 'partial')
    partial = snapshot(finished / 'partial')
    def fill(a):
        for k in sorted(names, key=len, reverse=True):
            if a == k or a.startswith(k + '/') or a.startswith(k + '.'): return str(names[k]) + a[len(k):]
        return a
    for argv, fragment in BAD:
        rc, out, err = cli(*map(fill, argv))
        assert rc == 2, (argv, rc, err)
        assert fragment in err, (argv, err)
        assert 'Traceback' not in err and len(err.strip().splitlines()) <= 3, (argv, err)
        assert snapshot(run) == before, argv
    assert snapshot(finished / 'partial') == partial
    assert not (tmp_path / 'new').exists()  # refused before any folder was made
    assert not (tmp_path / 'new2').exists()  # refused after the folder was made (no data): removed again


def test_finished_run_extends_by_epochs(finished, tmp_path):
    "Rerun with a larger --epochs: only the new epochs train, and the result is the run of that length from scratch."
    shutil.copytree(finished / 'run', tmp_path / 'extended')
    rc, out, err = cli('train', *TINY, '--epochs', '3', '--out', tmp_path / 'extended')
    assert rc == 0, err
    assert 'extending the finished 2-epoch run to 3 epochs' in out and 'epoch 1/3' not in out, out
    rc, _, err = cli('train', *TINY, '--epochs', '3', '--out', tmp_path / 'scratch')
    assert rc == 0, err
    assert len(rows(tmp_path / 'extended')) == 3 and rows(tmp_path / 'extended') == rows(tmp_path / 'scratch')


def test_ctrl_c_exits_130_and_the_rerun_resumes(tmp_path):
    "SIGINT during training: one line, exit 130, the checkpoint intact; the same command resumes after it."
    run = tmp_path / 'run'
    cmd = [sys.executable, '-m', 'bnn_opt.cli', 'train', *TINY, '--epochs', '1000', '--out', str(run)]
    p = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 500
        while not (run / 'metrics.csv').exists():
            assert p.poll() is None and time.time() < deadline, p.stderr.read() if p.poll() is not None else 'timeout'
            time.sleep(0.2)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == 130, (p.returncode, err)
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
    assert 'interrupted in epoch' in err and 'rerun the same command to resume' in err, err
    done = len(rows(run))
    r = subprocess.run(cmd + ['--stop-after', '1'], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f'resuming after epoch {done} of 1000' in r.stdout, r.stdout
    assert len(rows(run)) == done + 1


def test_export_unfinished_and_evaluate_data_set(finished, tmp_path):
    "An unfinished run exports only when asked; evaluate reads the data set from the file."
    rc, out, err = cli('export', finished / 'partial', '--out', tmp_path / 'p.safetensors', '--allow-unfinished')
    assert rc == 0 and (tmp_path / 'p.safetensors').exists(), err
    rc, out, err = cli('evaluate', finished / 'model.bnn.safetensors')
    assert rc == 0 and 'test images of digits' in out, err
    umask = os.umask(0o022); os.umask(umask)
    for f in (tmp_path / 'p.safetensors', finished / 'run' / 'config.json', finished / 'run' / 'checkpoint.pt'):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f  # the user's umask, not a temporary file's 0600


def test_config_json_missing_broken_or_lying_is_refused(finished, tmp_path):
    "An interrupted run whose config.json is gone, broken, newer, unknown or edited is never resumed with new settings."
    run = tmp_path / 'run'
    def attempt():
        shutil.rmtree(run, ignore_errors=True); shutil.copytree(finished / 'partial', run)
        return run
    cases = [
        (lambda: (run / 'config.json').unlink(), "holds checkpoint.pt but no config.json, so the settings it was trained with cannot be checked"),
        (lambda: (run / 'config.json').write_text('{"config": {'), "config.json` is not valid JSON"),
        (lambda: (run / 'config.json').write_text(json.dumps(dict(format=99, config={}))), "has run-folder format 99, newer than this bnn_opt reads"),
    ]
    for damage, fragment in cases:
        attempt(); damage(); ck = snapshot(run)
        rc, out, err = cli('train', *TINY, '--epochs', '2', '--set', 'threshold=1e-3', '--out', run)
        assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1, (fragment, err)
        assert snapshot(run) == ck  # nothing written
    attempt(); info = json.loads((run / 'config.json').read_text())
    (run / 'config.json').write_text(json.dumps(dict(info, config=dict(info['config'], momentum=0.9))))
    rc, _, err = cli('train', *TINY, '--epochs', '3', '--out', run)  # an extension must not drop what it does not know
    assert rc == 2 and "records settings this bnn_opt does not know (momentum)" in err, err
    # config.json edited to agree with a new setting: the checkpoint's own record still refuses it
    attempt(); (run / 'config.json').write_text(json.dumps(dict(info, config=dict(info['config'], threshold=1e-3))))
    rc, _, err = cli('train', *TINY, '--epochs', '2', '--set', 'threshold=1e-3', '--out', run)
    assert rc == 2 and "was trained with other settings {'threshold': (1e-06, 0.001)}" in err, err
    attempt(); (run / 'config.json').write_text(json.dumps(dict(info, config=dict(info['config'], width=8))))
    rc, _, err = cli('train', *TINY, '--width', '8', '--epochs', '2', '--out', run)
    assert rc == 2 and "was trained with other settings {'width': (4, 8)}" in err and 'Traceback' not in err, err


def test_finished_run_with_a_corrupt_checkpoint_is_not_complete(finished, tmp_path):
    run = tmp_path / 'run'; shutil.copytree(finished / 'run', run)
    data = (run / 'checkpoint.pt').read_bytes(); (run / 'checkpoint.pt').write_bytes(data[:len(data) // 2])
    rc, out, err = cli('train', *TINY, '--epochs', '2', '--out', run)
    assert rc == 2 and 'already complete' not in out and "checkpoint.pt` is corrupt or unreadable" in err, (out, err)


def test_changed_data_rebuilds_the_cache_and_refuses_to_resume(tmp_path, monkeypatch):
    "Images replaced by others of the same size and count: the cache is rebuilt (one line), the old run is not resumed."
    data = make_fake_imagefolder(tmp_path / 'data', num_classes=2, per_class=20, size=32, splits=('train', 'test'))
    monkeypatch.setenv('BNN_OPT_CACHE', str(tmp_path / 'cache'))  # keeps the cache out of the data folder
    args = ['train', '--dataset', 'cifar10', '--data', data, *TINY[4:], '--preset', 'bop2ndorder']
    rc, _, err = cli(*args, '--epochs', '1', '--out', tmp_path / 'run')
    assert rc == 0, err
    assert len(list((tmp_path / 'cache').glob('*.pt'))) == 2 and not list(data.glob('bnn_opt_cache_*'))
    shutil.copy(data / 'train/class001/0000.png', data / 'train/class000/0000.png')  # same size, same count
    rc, _, err = cli(*args, '--epochs', '2', '--out', tmp_path / 'run')
    assert rc == 2 and f"The data of `{tmp_path / 'run'}` changed since it was trained on" in err, err
    rc, _, err = cli(*args, '--epochs', '1', '--out', tmp_path / 'fresh')
    assert rc == 0 and f"bnn_opt: the files in `{data / 'train'}` changed since the cache" in err and 'rebuilding it' in err, err
    assert err.count('changed since the cache') == 1, err  # the test split's cache is still good


PATCHED = r'''
import os, sys, time
import bnn_opt.files, bnn_opt.train
mode, arg = os.environ['PATCH'], os.environ['PATCH_ARG']
if mode == 'hold':  # keep the lock: wait before training until the test says go
    prepare = bnn_opt.train.prepare_run
    def held(*a, **k):
        while not os.path.exists(arg): time.sleep(0.05)
        return prepare(*a, **k)
    bnn_opt.train.prepare_run = held
if mode == 'slow_checkpoint':  # the second checkpoint write: announce it, then take 3 s
    write, seen = bnn_opt.files._write_all, []
    def slow(path, data):
        if path.name.startswith('.checkpoint.pt.'):
            seen.append(path)
            if len(seen) == 2:
                open(arg, 'w').close(); time.sleep(3)
        return write(path, data)
    bnn_opt.files._write_all = slow
from bnn_opt.cli import main
sys.exit(main())
'''


def _patched(mode, arg, *argv, **kw):
    env = dict(ENV, PATCH=mode, PATCH_ARG=str(arg))
    return subprocess.Popen([sys.executable, '-c', PATCHED, *map(str, argv)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_two_commands_one_folder(tmp_path):
    "Two trains started together on one --out (seeds 0 and 1): one exits 2 naming the other; the folder is a solo run."
    run, go = tmp_path / 'run', tmp_path / 'go'
    procs = [_patched('hold', go, 'train', *TINY, '--epochs', '2', '--seed', str(s), '--out', run) for s in (0, 1)]
    try:
        deadline = time.time() + 300
        while all(p.poll() is None for p in procs):
            assert time.time() < deadline, 'neither command ended'
            time.sleep(0.1)
        loser = next(p for p in procs if p.poll() is not None)
        winner = procs[1 - procs.index(loser)]
        go.touch()
        out, err = loser.communicate(timeout=60)
        w_out, w_err = winner.communicate(timeout=600)
    finally:
        for p in procs:
            if p.poll() is None: p.kill()
    assert loser.returncode == 2 and winner.returncode == 0, (loser.returncode, err, winner.returncode, w_err)
    assert f"is in use by another `bnn-opt train` (pid {winner.pid} on " in err and len(err.strip().splitlines()) == 1, err
    seed = procs.index(winner)
    rc, _, e = cli('train', *TINY, '--epochs', '2', '--seed', seed, '--out', tmp_path / 'solo')
    assert rc == 0, e
    assert rows(run) == rows(tmp_path / 'solo') and len(rows(run)) == 2
    config = lambda d: json.loads((d / 'config.json').read_text())['config']
    assert config(run) == config(tmp_path / 'solo') and config(run)['seed'] == seed
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in (tmp_path / 'solo').iterdir())


def test_sigterm_while_a_checkpoint_is_written(tmp_path):
    "SIGTERM during the checkpoint write: the write finishes, then exit 143; the checkpoint is whole and resumes."
    run, mark = tmp_path / 'run', tmp_path / 'writing'
    p = _patched('slow_checkpoint', mark, 'train', *TINY, '--epochs', '3', '--out', run)
    try:
        deadline = time.time() + 300
        while not mark.exists():
            assert p.poll() is None and time.time() < deadline, p.communicate()[1] if p.poll() is not None else 'timeout'
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == 143 and 'interrupted in epoch 2 (SIGTERM)' in err, (p.returncode, err)
    assert load_checkpoint(run / 'checkpoint.pt')['epoch'] == 2 and len(rows(run)) == 2
    assert not [f for f in run.iterdir() if f.name.endswith('.tmp')]
    rc, out, err = cli('train', *TINY, '--epochs', '3', '--out', run)
    assert rc == 0 and 'resuming after epoch 2 of 3' in out, (out, err)


def test_disk_full_during_a_checkpoint(tmp_path, monkeypatch):
    "No space left while the second checkpoint is written: one line, exit 2, the first checkpoint intact; a rerun resumes."
    import bnn_opt.files
    write, seen = bnn_opt.files._write_all, []
    def full(path, data):
        if path.name.startswith('.checkpoint.pt.'):
            seen.append(path)
            if len(seen) >= 2: raise OSError(errno.ENOSPC, 'No space left on device')
        return write(path, data)
    monkeypatch.setattr(bnn_opt.files, '_write_all', full)
    run = tmp_path / 'run'
    rc, out, err = cli('train', *TINY, '--epochs', '3', '--out', run)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert f"No space left on the device while writing `{run / 'checkpoint.pt'}`: its previous version is intact" in err, err
    assert load_checkpoint(run / 'checkpoint.pt')['epoch'] == 1 and len(rows(run)) == 1
    assert sorted(f.name for f in run.iterdir()) == sorted([LOCK_FILE, 'checkpoint.pt', 'config.json', 'metrics.csv'])
    monkeypatch.setattr(bnn_opt.files, '_write_all', write)
    rc, out, err = cli('train', *TINY, '--epochs', '3', '--out', run)
    assert rc == 0 and 'resuming after epoch 1 of 3' in out, err


def test_a_closed_stdout_does_not_stop_training(tmp_path):
    "`bnn-opt train ... | head -1`: the reader leaves after one line, the run goes on to the end."
    run = tmp_path / 'run'
    p = subprocess.Popen([sys.executable, '-m', 'bnn_opt.cli', 'train', *TINY, '--epochs', '3', '--out', str(run)],
                         env=dict(ENV, PYTHONUNBUFFERED='1'), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = p.stdout.readline()
        p.stdout.close()  # as `head -1` does
        err = p.stderr.read().decode(); p.wait(timeout=600)
    finally:
        if p.poll() is None: p.kill()
    assert first and p.returncode == 0 and 'Broken pipe' not in err, (first, p.returncode, err)
    assert json.loads((run / 'summary.json').read_text())['complete'] and len(rows(run)) == 3


HOLD = r'''
import sys, time
from bnn_opt.files import folder_lock
with folder_lock(sys.argv[1], 'bnn-opt reproduce'):
    print('held', flush=True); time.sleep(600)
'''


def test_two_reproduce_commands_one_folder(tmp_path):
    "A `bnn-opt reproduce` on a results folder another reproduce holds exits 2 naming it; once that one dies, nothing blocks."
    out = tmp_path / 'results'
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(out)], env=ENV, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        rc, _, err = cli('reproduce', 'bias_norm', '--scale', 'tiny', '--out', out)
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert f"is in use by another `bnn-opt reproduce` (pid {holder.pid} on " in err, err
        assert not (out / 'runs').exists()
    finally:
        holder.kill(); holder.wait()
    rc, _, err = cli('reproduce', 'bias_norm', '--scale', 'tiny', '--out', out, '--seeds', 'x')  # the dead holder's lock
    assert rc == 2 and 'in use' not in err and '--seeds' in err, err                          # blocks nothing
