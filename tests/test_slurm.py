"""`bnn-opt reproduce --launcher slurm` against a real one-node Slurm cluster (tools/slurm_cluster.sh starts
munged, slurmctld and slurmd in a temporary folder and stops them afterwards), at tiny scale:

- each run of the table is a Slurm job: its id is in the run folder, and the run saw it as SLURM_JOB_ID;
- a second submission submits nothing;
- a job scancel'ed mid-run is submitted again by the next call and resumes; a job signalled as preempted
  (USR2, what Slurm sends before a time limit) requeues itself and resumes;
- the tables and report equal those of the local launcher for the same runs (fixed seeds, one thread);
- a call that submits nothing while a job is still queued writes the report, naming the run still missing;
- a run that fails for a real reason is submitted again --max-retries times, then reported failed;
- the local launcher leaves alone a run whose Slurm job is still queued;
- either launcher finishes the other's folder.

Skipped, saying why, only where Slurm cannot be had (not root, or its packages are missing and cannot be
installed: `tools/slurm_cluster.sh install`); with BNN_OPT_REQUIRE_SLURM=1 (CI) that is a failure.
"""
import csv, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'tools' / 'slurm_cluster.sh'
EPOCHS = 6  # about half a second each on 1000 digits: long enough to signal a job between two epochs
ARGS = ['schedulers', '--scale', 'tiny', '--epochs', str(EPOCHS), '--set', 'subset=1000', '--threads', '1']


@pytest.fixture(scope='module')
def slurm_env(tmp_path_factory):
    "The environment of a command that talks to a fresh one-node cluster (SLURM_CONF set); the daemons stop afterwards."
    d = tmp_path_factory.mktemp('cluster')
    r = subprocess.run(['bash', str(SCRIPT), 'start', str(d)], capture_output=True, text=True, timeout=120)
    if r.returncode == 3 and os.environ.get('BNN_OPT_REQUIRE_SLURM') != '1':
        pytest.skip(f"no Slurm here: {r.stdout.strip()}")
    assert r.returncode == 0, f"Slurm did not start: {r.stdout}{r.stderr}\n" + '\n'.join(
        p.read_text()[-2000:] for p in sorted((d / 'log').glob('*.log')))
    try: yield dict(os.environ, SLURM_CONF=str(d / 'slurm.conf'))
    finally: subprocess.run(['bash', str(SCRIPT), 'stop', str(d)], capture_output=True, timeout=120)


def _reproduce(out, *extra, env=None, timeout=600):
    cmd = [sys.executable, '-m', 'bnn_opt.cli', 'reproduce', *ARGS, '--out', str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _record(run_dir): return json.loads((run_dir / 'runner.json').read_text())


def _epochs(run_dir):
    try: return len((run_dir / 'metrics.csv').read_text().splitlines()) - 1
    except OSError: return 0


def _states(env, jobs):
    r = subprocess.run(['squeue', '-h', '--states=all', '-o', '%i|%T', '-j', ','.join(jobs)], capture_output=True,
                       text=True, env=env)
    return dict(l.split('|') for l in r.stdout.split())


def _mid_run(out, env, exclude=(), timeout=240):
    "A run whose job is running with at least one epoch checkpointed and three still to train."
    t0 = time.time()
    while time.time() - t0 < timeout:
        runs = [d for d in sorted((out / 'runs').iterdir()) if d.name not in exclude and (d / 'runner.json').exists()]
        states = _states(env, [_record(d)['job_id'] for d in runs])
        for d in runs:
            if states.get(_record(d)['job_id']) == 'RUNNING' and 1 <= _epochs(d) <= EPOCHS - 3:
                return d, _record(d)['job_id']
        time.sleep(0.05)
    raise AssertionError(f"no run was seen in the middle of its training in {timeout} s")


def _wait_ended(env, job, timeout=120):
    t0 = time.time()
    while _states(env, [job]).get(job) not in ('CANCELLED', 'COMPLETED', 'FAILED', None):
        assert time.time() - t0 < timeout, f"job {job} still {_states(env, [job])}"
        time.sleep(0.2)


def _release_requeued(env, job, timeout=120):
    "Wait until `job` has requeued itself, then let it start now (Slurm holds a requeued job back for about 2 minutes)."
    t0 = time.time()
    while 'Reason=BeginTime' not in (show := subprocess.run(['scontrol', 'show', 'job', job], capture_output=True,
                                                             text=True, env=env).stdout):
        assert time.time() - t0 < timeout, f"job {job} did not requeue itself: {show}"
        time.sleep(0.2)
    subprocess.run(['scontrol', 'update', f'JobId={job}', 'StartTime=now'], check=True, env=env)


def _held_job(env) -> str:
    "The id of a job that stays pending (held)."
    return subprocess.run(['sbatch', '--parsable', '--hold', '--wrap', 'true', '-o', '/dev/null'], capture_output=True,
                          text=True, check=True, env=env).stdout.strip()


def _csv(path, drop=()):
    with open(path) as f: return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def _report_body(path):
    "REPORT.md without the lines that say how and when it was made (command, date, counts of this call)."
    return [l for l in path.read_text().splitlines() if not l.startswith(('Command:', 'Written:', 'Runs:'))]


def test_table_through_slurm(slurm_env, tmp_path):
    env, S, L = slurm_env, tmp_path / 'slurm', tmp_path / 'local'
    r = _reproduce(S, '--launcher', 'slurm', env=env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '6 runs: 6 submitted, 0 already complete' in r.stdout and 'Run the same command again' in r.stdout
    runs = sorted((S / 'runs').iterdir())
    first = {d.name: _record(d)['job_id'] for d in runs}
    assert len(runs) == 6 and len(set(first.values())) == 6 and not (S / 'REPORT.md').exists()

    # the same runs with the local launcher, meanwhile (its processes compete with the jobs for the two cores)
    local = subprocess.Popen([sys.executable, '-m', 'bnn_opt.cli', 'reproduce', *ARGS, '--out', str(L), '--jobs', '2'],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        r = _reproduce(S, '--launcher', 'slurm', '--runs-only', env=env, timeout=180)  # a second submission
        assert r.returncode == 0 and re.search(r'6 runs: 0 submitted, \d already complete', r.stdout), r.stdout + r.stderr
        assert {d.name: _record(d)['job_id'] for d in runs} == first

        # preempted: USR2 (what Slurm sends before the time limit) -> the job stops its run and requeues itself
        pre, pre_job = _mid_run(S, env)
        subprocess.run(['scancel', '--signal=USR2', pre_job], check=True, env=env)
        _release_requeued(env, pre_job)
        # cancelled: the job ends; the next call submits the run again
        gone, gone_job = _mid_run(S, env, exclude={pre.name})
        subprocess.run(['scancel', gone_job], check=True, env=env)
        _wait_ended(env, gone_job)
        assert not json.loads((gone / 'summary.json').read_text() if (gone / 'summary.json').exists() else '{}').get('complete')

        r = _reproduce(S, '--launcher', 'slurm', '--wait', env=env, timeout=420)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"submitted {gone.name}: job" in r.stdout and f"job {gone_job} ended (CANCELLED)" in r.stdout, r.stdout
        assert 'Report:' in r.stdout and 'still missing' not in r.stdout
        out, _ = local.communicate(timeout=420)
        assert local.returncode == 0, out
    finally:
        if local.poll() is None: local.terminate(); local.wait(60)  # the runner stops its runs on SIGTERM

    for d in runs:  # every run trained under Slurm, and saw its job
        rec = _record(d)
        assert rec['launcher'] == 'slurm' and rec['rc'] == 0 and rec['job_seen'] == rec['job_id'], (d.name, rec)
        assert rec['jobs'][0] == first[d.name] and Path(rec['slurm_log']).exists()
        assert f"slurm job {rec['job_id']} on " in (d / 'log.txt').read_text()
    # requeued: the same job, resumed after the epochs it had checkpointed
    rec, log = _record(pre), (pre / 'log.txt').read_text()
    assert rec['jobs'] == [pre_job] and rec['requeues'] == 1, rec
    assert 'requeued, resumes from its checkpoint' in log and re.search(rf'resuming after epoch [1-{EPOCHS - 1}] of {EPOCHS}', log), log
    # cancelled: a second job, which resumed
    rec, log = _record(gone), (gone / 'log.txt').read_text()
    assert rec['jobs'] == [gone_job, rec['job_id']] and rec['job_id'] != gone_job, rec
    assert re.search(rf'resuming after epoch [1-{EPOCHS - 1}] of {EPOCHS}', log.split(f'slurm job {rec["job_id"]} on ')[1]), log

    # bit-identical to the local launcher: every epoch of every run, the table, the report
    for d in runs:
        assert _csv(d / 'metrics.csv', drop=('epoch_seconds',)) == _csv(L / 'runs' / d.name / 'metrics.csv', drop=('epoch_seconds',)), d.name
    assert (S / 'schedulers.md').read_text() == (L / 'schedulers.md').read_text()
    assert _csv(S / 'schedulers.csv') == _csv(L / 'schedulers.csv')
    assert _report_body(S / 'REPORT.md') == _report_body(L / 'REPORT.md')

    # a call that submits nothing while a run's job is still queued writes the report from the others, naming it
    part, lone = tmp_path / 'partial', gone.name
    shutil.copytree(S, part)
    for f in ('summary.json', 'checkpoint.pt', 'metrics.csv', 'config.json', 'REPORT.md'):
        (part / 'runs' / lone / f).unlink(missing_ok=True); (part / f).unlink(missing_ok=True)
    held = _held_job(env)
    try:
        (part / 'runs' / lone / 'runner.json').write_text(json.dumps(dict(launcher='slurm', job_id=held, jobs=[held])))
        r = _reproduce(part, '--launcher', 'slurm', env=env, timeout=300)
    finally: subprocess.run(['scancel', held], env=env)
    assert r.returncode == 0 and '6 runs: 0 submitted, 5 already complete, 1 running or queued' in r.stdout, r.stdout + r.stderr
    report = (part / 'REPORT.md').read_text()
    assert '## Runs still missing' in report and f"- `{lone}`: job {held} PENDING" in report, report

    # a submission after all finished submits nothing; either launcher finishes the other's folder
    for out, extra in ((S, ['--launcher', 'slurm']), (L, ['--launcher', 'slurm']), (S, [])):
        r = _reproduce(out, *extra, '--runs-only', env=env, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert ('6 runs: 0 submitted, 6 already complete' if extra else '6 runs: 6 already complete, 0 to train') in r.stdout, r.stdout


def test_local_launcher_leaves_runs_held_by_slurm_jobs(slurm_env, tmp_path, monkeypatch):
    "A run whose Slurm job is still queued or running is not trained locally as well (two writers, one folder)."
    from bnn_opt.repro.design import make_run
    from bnn_opt.repro.runner import run_grid
    monkeypatch.setenv('SLURM_CONF', slurm_env['SLURM_CONF'])
    hold = _held_job(slurm_env)
    try:
        rid, kw = make_run('bop2ndorder', 'tiny')
        d = tmp_path / 'runs' / rid; d.mkdir(parents=True)
        (d / 'runner.json').write_text(json.dumps(dict(launcher='slurm', job_id=hold, jobs=[hold])))
        [o] = run_grid([(rid, kw)], tmp_path, jobs=0, log=lambda *a: None)
        assert o.status == 'failed' and f"Slurm job {hold} (PENDING) still holds this run" in o.message, o
        assert not (d / 'config.json').exists()
    finally: subprocess.run(['scancel', hold])


def test_real_failure_is_retried_then_given_up(slurm_env, tmp_path, monkeypatch):
    "A run that fails for a real reason (a corrupt checkpoint) is submitted again --max-retries times, then reported failed."
    from bnn_opt.repro.design import make_run
    from bnn_opt.repro.slurm import SlurmOptions, submit_grid, wait_grid
    monkeypatch.setenv('SLURM_CONF', slurm_env['SLURM_CONF'])
    rid, kw = make_run('bop2ndorder', 'tiny')
    d = tmp_path / 'runs' / rid; d.mkdir(parents=True)
    (d / 'checkpoint.pt').write_bytes(b'not a checkpoint')
    opts, lines = SlurmOptions(max_retries=1), []
    [o] = wait_grid([(rid, kw)], tmp_path, opts, log=lines.append, poll=0.5, max_poll=2)
    rec = _record(d)
    assert o.status == 'failed' and len(rec['jobs']) == 2 and rec['failed_jobs'] == rec['jobs'], (o, rec)
    assert f"Slurm jobs {', '.join(rec['jobs'])} failed (--max-retries 1)" in o.message and 'is corrupt or unreadable' in o.message
    assert rec['rc'] == 2 and rec['log'] == o.log and 'is corrupt or unreadable' in Path(rec['log']).read_text()
    [o] = submit_grid([(rid, kw)], tmp_path, opts, log=lines.append)  # and it stays given up
    assert o.status == 'failed' and _record(d)['jobs'] == rec['jobs']


@pytest.mark.parametrize('argv, message', [
    (['--partition', 'gpu'], '--partition needs --launcher slurm'),
    (['--wait'], '--wait needs --launcher slurm'),
    (['--launcher', 'slurm', '--gpus', '0,1'], '--gpus places runs on this machine'),
    (['--launcher', 'slurm', '--time', '4h'], 'Invalid --time value: `4h`'),
    (['--launcher', 'slurm', '--slurm-option', 'constraint='], 'Invalid --slurm-option value: `constraint=`'),
    (['--launcher', 'slurm', '--slurm-option', 'output=x.log'], 'Invalid --slurm-option `output`'),
    (['--launcher', 'slurm', '--max-retries', '-1'], 'Invalid max_retries value: `-1`'),
])
def test_bad_options_exit_2(argv, message, tmp_path, capsys):
    "Bad or misplaced Slurm options: one line, exit 2, nothing submitted (no cluster needed)."
    from bnn_opt.cli import main
    assert main(['reproduce', 'schedulers', '--scale', 'tiny', '--out', str(tmp_path / 'x'), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / 'x' / 'runs').exists()
