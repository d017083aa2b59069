"""What `bnn-opt` prints when something goes wrong: a bad input in one line (exit 2), a bug with its traceback and a
request to report it (exit 1), and with `--debug` or BNN_OPT_DEBUG=1 the traceback of any error."""
import os, subprocess, sys
from pathlib import Path

import pytest

import bnn_opt.cli as cli_mod
from bnn_opt.checks import InputError, check_choice, check_range
from bnn_opt.cli import USER_ERRORS
from test_cli import cli  # `bnn-opt argv` in this process: (exit status, stdout, stderr)

ROOT = Path(__file__).resolve().parents[1]
BAD_GAMMA = ['train', '--set', 'gamma=2', '--out']       # refused while resolving the settings: nothing trains


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch): monkeypatch.delenv('BNN_OPT_DEBUG', raising=False)


def test_user_errors_are_named_types():
    "A user error is a type the CLI names, not any ValueError or OSError; the checks raise InputError, a ValueError."
    assert ValueError not in USER_ERRORS and OSError not in USER_ERRORS and InputError in USER_ERRORS
    for bad in (lambda: check_range('gamma', 2., 0., 1.), lambda: check_choice('norm', 'group', ('batch',))):
        with pytest.raises(InputError) as e: bad()
        assert isinstance(e.value, ValueError)


def test_bad_input_is_one_line(tmp_path):
    rc, out, err = cli(*BAD_GAMMA, tmp_path / 'run')
    assert rc == 2 and err == 'bnn-opt train: Invalid gamma value: `2` (must be in (0.0, 1.0])\n', err
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('how', ['--debug after the command', '--debug before it', 'BNN_OPT_DEBUG=1'])
def test_debug_shows_the_traceback_of_a_bad_input(tmp_path, monkeypatch, how):
    argv = [*BAD_GAMMA, tmp_path / 'run']
    if how == '--debug after the command': argv.append('--debug')
    elif how == '--debug before it': argv.insert(0, '--debug')
    else: monkeypatch.setenv('BNN_OPT_DEBUG', '1')
    rc, _, err = cli(*argv)
    assert rc == 2 and err.startswith('Traceback (most recent call last):') and 'check_range' in err, err
    assert err.splitlines()[-1] == 'bnn-opt train: Invalid gamma value: `2` (must be in (0.0, 1.0])'


def test_debug_off_values(tmp_path, monkeypatch):
    for off in ('', '0'):
        monkeypatch.setenv('BNN_OPT_DEBUG', off)
        rc, _, err = cli(*BAD_GAMMA, tmp_path / 'run')
        assert rc == 2 and 'Traceback' not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize('exc', [ValueError('not enough values to unpack (expected 3, got 2)'), KeyError('lr'),
                                 OSError(28, 'No space left on device'), TypeError("'NoneType' object is not iterable")])
def test_a_bug_shows_its_traceback_and_asks_for_a_report(tmp_path, monkeypatch, exc):
    "An exception the library did not raise as a user error, even a ValueError or an OSError, is shown as a bug."
    def broken(a): raise exc
    monkeypatch.setattr(cli_mod, 'cmd_export', broken)      # parser() binds the command when it is built
    rc, _, err = cli('export', tmp_path / 'run', '--out', tmp_path / 'model.onnx')
    lines = err.splitlines()
    assert rc == 1 and lines[0] == 'Traceback (most recent call last):' and 'in broken' in err, err
    assert lines[-2] == f'{type(exc).__name__}: {exc}'
    assert lines[-1].startswith('bnn-opt export: this is a bug in bnn-opt') and 'report' in lines[-1]


def test_interrupt_unchanged(tmp_path, monkeypatch):
    def stop(a): raise KeyboardInterrupt
    monkeypatch.setattr(cli_mod, 'cmd_export', stop)
    assert cli('export', tmp_path / 'run', '--out', tmp_path / 'm.onnx') == (130, '', 'bnn-opt export: interrupted\n')


def test_debug_in_help():
    for argv in (['--help'], ['train', '--help'], ['export', '--help']):
        rc, out, _ = cli(*argv)
        assert rc == 0 and '--debug' in out and 'BNN_OPT_DEBUG=1' in ' '.join(out.split())


def test_console_script_exit_status(tmp_path):
    "`python -m bnn_opt.cli`, as the console script runs it: the same one line and status 2, the traceback with BNN_OPT_DEBUG."
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'bnn_opt.cli', *BAD_GAMMA, str(tmp_path / 'run')]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.splitlines() == ['bnn-opt train: Invalid gamma value: `2` (must be in (0.0, 1.0])']
    r = subprocess.run(cmd, env=dict(env, BNN_OPT_DEBUG='1'), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'Traceback' in r.stderr
