"""TensorBoard logging is asked for (`tensorboard=True`, `bnn-opt train --tensorboard`), refused in one line when the
package is missing, and its failures are never swallowed. The package is optional (not installed by `make install`):
a stand-in `torch.utils.tensorboard` records what training writes."""
import contextlib, importlib.util, io, sys, types

import pytest

from bnn_opt.checks import InputError
from bnn_opt.cli import main
from bnn_opt.config import RUNTIME_KEYS, resolve_config
from bnn_opt.train import train

TINY = dict(width=4, subset=100, batch_size=50, device='cpu', threads=1, epochs=2)


def _no_tensorboard(monkeypatch):
    "As if the tensorboard package were not installed (whether or not it is)."
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'tensorboard' else real(name, *a))


class FakeWriter:
    "Records `add_scalar` calls; `fail` makes them raise, as a full disk would."
    made, fail = [], None
    def __init__(self, logdir): self.logdir, self.scalars, self.flushes = logdir, [], 0; FakeWriter.made.append(self)
    def add_scalar(self, tag, value, step):
        if FakeWriter.fail: raise FakeWriter.fail
        self.scalars.append((tag, step))
    def flush(self): self.flushes += 1


@pytest.fixture
def fake_tensorboard(monkeypatch):
    mod = types.ModuleType('torch.utils.tensorboard'); mod.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', mod)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: object() if name == 'tensorboard' else real(name, *a))
    FakeWriter.made, FakeWriter.fail = [], None
    return FakeWriter


def test_off_by_default_and_a_runtime_setting():
    c = resolve_config('bop2ndorder', **TINY)
    assert c.tensorboard is False and 'tensorboard' in RUNTIME_KEYS   # on or off, the same run (it may resume either way)
    with pytest.raises(InputError, match=r"Invalid tensorboard value: `'yes'`"): resolve_config(tensorboard='yes')


def test_asked_for_without_the_package_is_refused(monkeypatch, tmp_path):
    _no_tensorboard(monkeypatch)
    with pytest.raises(InputError, match='the tensorboard package is not installed: `pip install tensorboard`'):
        resolve_config('bop2ndorder', tensorboard=True)
    for how in (['--tensorboard'], ['--set', 'tensorboard=true']):
        err = io.StringIO()
        with contextlib.redirect_stderr(err): rc = main(['train', *how, '--out', str(tmp_path / 'run')])
        assert rc == 2 and err.getvalue() == ('bnn-opt train: Invalid tensorboard value: `True` (the tensorboard package is '
                                              'not installed: `pip install tensorboard`, or train without TensorBoard)\n')
    assert not (tmp_path / 'run').exists()


def test_scalars_every_epoch_only_when_asked(fake_tensorboard, tmp_path):
    log = lambda *a, **k: None
    train(resolve_config('bop2ndorder', **TINY), tmp_path / 'off', progress=False, log=log)
    assert fake_tensorboard.made == [] and not (tmp_path / 'off' / 'tb').exists()
    train(resolve_config('bop2ndorder', tensorboard=True, **TINY), tmp_path / 'on', progress=False, log=log)
    (w,) = fake_tensorboard.made
    assert w.logdir == str(tmp_path / 'on' / 'tb') and w.flushes == 2
    assert {('test_acc', 1), ('test_acc', 2), ('train_loss', 2), ('flip_ratio', 1)} <= set(w.scalars)


def test_a_failing_writer_stops_the_run(fake_tensorboard, tmp_path):
    fake_tensorboard.fail = OSError(28, 'No space left on device')
    with pytest.raises(OSError, match='No space left'):
        train(resolve_config('bop2ndorder', tensorboard=True, **TINY), tmp_path / 'run', progress=False, log=lambda *a: None)
