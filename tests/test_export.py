"""Trained networks exported to packed (1-bit) and ONNX files predict exactly what the trained networks predict."""
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch

from bnn_opt.data import get_data
from bnn_opt.export import (evaluate_file, export_onnx, export_packed, load_packed, load_run, onnx_session, run_onnx,
                            saved_size)
from bnn_opt.train import resolve_config, train

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')


def _digits_test():
    "The whole digits test set (360 images) as one batch, and its labels."
    (x, y), = list(get_data('digits', batch_size=360).test)
    return x, y


@pytest.fixture(scope='module')
def test_set():
    return _digits_test()


@pytest.fixture(scope='module')
def binarynet_run(tmp_path_factory):
    "A BinaryNet trained for one epoch by the `bnn-opt train` command."
    out = tmp_path_factory.mktemp('runs') / 'binarynet'
    cmd = [sys.executable, '-m', 'bnn_opt.cli', 'train', '--preset', 'bop2ndorder', '--width', '32', '--subset', '200',
           '--epochs', '1', '--dataset', 'digits', '--device', 'cpu', '--no-progress', '--out', str(out)]
    r = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return out


def _same_predictions(a: torch.Tensor, b: torch.Tensor):
    assert torch.equal(a.argmax(1), b.argmax(1)), f"{(a.argmax(1) != b.argmax(1)).sum()} predictions differ"
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_binarynet_packed_is_20x_smaller_and_predicts_the_same(binarynet_run, test_set, tmp_path):
    trained, _ = load_run(binarynet_run)
    f = export_packed(binarynet_run, tmp_path / 'bnet.safetensors')
    ck = torch.load(binarynet_run / 'checkpoint.pt', map_location='cpu', weights_only=True)
    # width 32: 649,568 binary weights, 2.60 MB as float32 and 81.2 kB as bits; the 970 batch norm channels keep
    # 4 floats each (shift, running mean and variance, the constant scale: 15.5 kB) and the header is ~5 kB, so about
    # 101 kB, ~26x. The real part grows with the width, the binary part with its square: at width 8 it is only 13.5x.
    float_bytes, packed_bytes = saved_size(ck['model']), f.stat().st_size
    assert packed_bytes * 20 <= float_bytes, (packed_bytes, float_bytes)
    assert packed_bytes * 20 <= (binarynet_run / 'checkpoint.pt').stat().st_size  # the checkpoint also holds optimizer state
    loaded = load_packed(f)
    assert loaded.export_info['folded'] == [f'norm{i}' for i in range(1, 9)]
    x, y = test_set
    with torch.no_grad(): y0, y1 = trained(x), loaded(x)
    _same_predictions(y1, y0)
    # the accuracy the training itself recorded, on its 40-image test subset, is the loaded model's too
    (xs, ys), = list(get_data('digits', batch_size=1000, subset=200).test)
    with torch.no_grad(): acc = (loaded(xs).argmax(1) == ys).float().mean().item()
    assert acc == pytest.approx(ck['rows'][-1]['test_acc'], abs=1e-9)
    r = evaluate_file(f, 'digits')
    assert (r['format'], r['n'], r['correct']) == ('packed', 360, (y0.argmax(1) == y).sum().item())
    assert r['accuracy'] == r['correct'] / 360


def test_binarynet_onnx_predicts_the_same(binarynet_run, test_set, tmp_path):
    trained, _ = load_run(binarynet_run)
    f = export_onnx(binarynet_run / 'checkpoint.pt', tmp_path / 'bnet.onnx')  # the checkpoint stands for its run folder
    x, y = test_set
    with torch.no_grad(): y0 = trained(x)
    session, meta = onnx_session(f)
    assert meta['architecture']['model'] == 'binarynet' and meta['source']['kind'] == 'run'
    _same_predictions(run_onnx(session, x), y0)
    r = evaluate_file(f, 'digits', batch_size=64)
    assert (r['format'], r['n'], r['correct']) == ('onnx', 360, (y0.argmax(1) == y).sum().item())


@pytest.mark.parametrize('model,norm,width', [('xnornet', 'batch', 8), ('birealnet', 'batch', 8), ('binarynet', 'layer', 4),
                                              ('xnornet', 'layer', 8)])
def test_trained_networks_round_trip(model, norm, width, test_set, tmp_path):
    c = resolve_config('bop2ndorder', model=model, norm=norm, width=width, subset=200, epochs=1, device='cpu', dataset='digits')
    train(c, tmp_path / 'run', progress=False, log=lambda *a, **k: None)
    trained, _ = load_run(tmp_path / 'run')
    x, _ = test_set
    with torch.no_grad(): y0 = trained(x)
    packed = load_packed(export_packed(tmp_path / 'run', tmp_path / 'm.safetensors'))
    assert bool(packed.export_info['folded']) == (model == 'xnornet' and norm == 'batch')
    with torch.no_grad(): _same_predictions(packed(x), y0)
    session, _ = onnx_session(export_onnx(tmp_path / 'run', tmp_path / 'm.onnx'))
    _same_predictions(run_onnx(session, x), y0)


def test_clear_errors(binarynet_run, tmp_path):
    empty = tmp_path / 'empty_run'; empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"No checkpoint.pt in run folder .*bnn-opt train"):
        export_packed(empty, tmp_path / 'x.safetensors')
    with pytest.raises(FileNotFoundError, match="not found"):
        export_packed(tmp_path / 'nowhere', tmp_path / 'x.safetensors')
    bad_run = tmp_path / 'bad_run'; bad_run.mkdir()
    (bad_run / 'checkpoint.pt').write_bytes(b'PK\x03\x04 not a checkpoint')
    with pytest.raises(ValueError, match="is corrupt or unreadable"):
        export_packed(bad_run, tmp_path / 'x.safetensors')
    f = export_packed(binarynet_run, tmp_path / 'good.safetensors')
    data = f.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        (tmp_path / 'cut.safetensors').write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated|neither"):
            evaluate_file(tmp_path / 'cut.safetensors', 'digits')
    (tmp_path / 'notes.txt').write_text('{"a": 1}')
    with pytest.raises(ValueError, match="neither a bnn_opt packed model"):
        load_packed(tmp_path / 'notes.txt')
    from safetensors.torch import save_file
    save_file({'w': torch.ones(2)}, str(tmp_path / 'other.safetensors'))
    with pytest.raises(ValueError, match="not a bnn_opt packed model"):
        load_packed(tmp_path / 'other.safetensors')
    from safetensors import safe_open
    with safe_open(str(f), 'pt') as g: meta, tensors = g.metadata(), {k: g.get_tensor(k) for k in g.keys()}
    save_file(tensors, str(tmp_path / 'v9.safetensors'), metadata=dict(meta, format_version='9'))
    with pytest.raises(ValueError, match="packed-format version `9`.*reads version 1"):
        evaluate_file(tmp_path / 'v9.safetensors', 'digits')
    o = export_onnx(f, tmp_path / 'm.onnx').read_bytes()
    (tmp_path / 'cut.onnx').write_bytes(o[:len(o) // 3])
    with pytest.raises(ValueError, match="truncated or not an ONNX model"):
        evaluate_file(tmp_path / 'cut.onnx', 'digits')
    with pytest.raises(FileNotFoundError, match="not found"):
        evaluate_file(tmp_path / 'missing.onnx', 'digits')
