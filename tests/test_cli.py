"""The `bnn-opt` command as a user meets it: bad inputs, Ctrl-C, extending a finished run."""
import contextlib, csv, hashlib, io, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest

from bnn_opt.cli import main

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
    "Every file under `folder` with its bytes' digest and its modification time."
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob('*')) if p.is_file()}


def rows(run: Path) -> list:
    with open(run / 'metrics.csv') as f:
        return [{k: v for k, v in r.items() if k != 'epoch_seconds'} for r in csv.DictReader(f)]


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    "A finished 2-epoch run and a packed export of it."
    d = tmp_path_factory.mktemp('cli')
    rc, _, err = cli('train', *TINY, '--epochs', '2', '--out', d / 'run')
    assert rc == 0, err
    rc, _, err = cli('export', d / 'run', '--out', d / 'model.bnn.safetensors')
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
    (['train', *TINY, '--epochs', '2', '--out', 'FILE/run'], "Cannot create the run folder"),
    (['train', *TINY, '--epochs', '2', '--set', 'sigma=1e-2', '--out', 'RUN'], "holds a run with other settings {'sigma': (0.001, 0.01)}"),
    (['train', *TINY, '--epochs', '1', '--out', 'RUN'], "cannot shorten it"),
    (['train', '--dataset', 'cifar10', '--data', 'NEW/nowhere', '--epochs', '1', '--out', 'NEW2'], "nowhere"),
    (['export', 'NEW', '--out', 'NEW2'], "not found"),
    (['evaluate', 'NEW.onnx', '--dataset', 'digits'], "new.onnx` not found"),
    (['evaluate', 'MODEL', '--dataset', 'digits', '--batch-size', '0'], "Invalid --batch-size value: `0`"),
    (['reproduce', 'table9', '--out', 'NEW'], "invalid choice: 'table9'"),
]


def test_bad_inputs_exit_2_with_one_line(finished, tmp_path):
    "Each bad input: exit status 2, a short message naming the problem, no traceback; the finished run is untouched."
    run, before = finished / 'run', snapshot(finished / 'run')
    assert len(BAD) >= 25
    names = dict(RUN=run, FILE=finished / 'a_file', MODEL=finished / 'model.bnn.safetensors', NEW=tmp_path / 'new',
                 NEW2=tmp_path / 'new2')
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
    assert not (tmp_path / 'new').exists()  # refused before any folder was made


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
