"""CPU inference time of exported networks against the float module they came from, measured in the same run.

For each network (seeded, batch norms given random statistics so that folding has work to do) it times, at each
batch size, interleaved round by round:
  float                  the float +-1 module as trained (batch norm, then sign, before every binary layer)
  packed_unfolded        `load_packed(fold=False)`: the same computation rebuilt from the packed file (a noise control)
  packed                 `load_packed()`: batch norms before a sign folded into per-channel thresholds
  onnxruntime            the `export_onnx` file in onnxruntime, graph optimizations off (exact)
  onnxruntime_optimized  the same with ORT_ENABLE_ALL (fuses batch norms into convolutions: not exact in general)
Every variant's predictions on the timed batch are compared with the float module's and recorded.

With --popcount it also times BinaryNet's binary dense layers (4608->1024, 1024->1024) as XNOR + popcount on
packed 64-bit words (numpy's bitwise_count) against the float matmul of +-1 values, after checking that both
give the same integers.

Speed-ups are time(float) / time(variant) within each round, median (min, max) over rounds: above 1 is faster than
the float module. The variants of a round run back to back, so a load that drifts between rounds cancels out.

    python benchmarks/inference.py [--models binarynet xnornet birealnet] [--batch-sizes 1 100] [--threads 1]
                                   [--rounds 15] [--popcount] [--out benchmarks/results/inference_cpu.json]
"""
import argparse, json, os, platform, statistics, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bnn_opt.export import export_onnx, export_packed, load_packed, onnx_session, run_onnx  # noqa: E402
from bnn_opt.models import get_model  # noqa: E402
from bnn_opt.quantizers import ste_sign  # noqa: E402

# name -> (get_model arguments, input side); the ImageNet networks at a quarter width keep the run short on 2 cores
MODELS = {'binarynet': (dict(filters=128), 32),
          'binarynet_layer': (dict(filters=128, norm='layer'), 32),
          'xnornet': (dict(width=0.25, input_size=224), 224),
          'birealnet': (dict(width=0.25), 224)}


def randomize_norms(model, seed=0):
    "Random shifts, scales (both signs) and running statistics in the batch norms, as a trained network has."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                if isinstance(m.weight, torch.nn.Parameter): m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 20 + 0.1)
    return model.eval()


def time_rounds(fns: dict, rounds: int, min_seconds: float) -> dict:
    """Seconds per call of each function. In each round every function runs enough calls to last `min_seconds`, one
    after the other, in an order rotated from round to round, so that the variants of a round share the machine's
    load (the development machine runs other jobs) and none is always first."""
    calls, keys = {}, list(fns)
    for k, f in fns.items():  # warm-up, and how many calls make a round
        f(); t = time.perf_counter(); f(); dt = time.perf_counter() - t
        calls[k] = max(1, int(min_seconds / max(dt, 1e-6)))
    out = {k: [] for k in fns}
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t = time.perf_counter()
            for _ in range(calls[k]): fns[k]()
            out[k].append((time.perf_counter() - t) / calls[k])
    return out


def summarize(times: dict, base: str = 'float') -> dict:
    """Median ms per call, and the speed-up over `base`: the median, min and max over rounds of time(base) / time(variant)
    within a round (paired: robust to the load drifting between rounds)."""
    res = {}
    for k, v in times.items():
        ratios = [b / t for b, t in zip(times[base], v)]
        res[k] = dict(ms_median=1e3 * statistics.median(v), ms_min=1e3 * min(v), ms_max=1e3 * max(v),
                      speedup_vs_float=statistics.median(ratios), speedup_min=min(ratios), speedup_max=max(ratios))
    return res


def bench_model(name, batch_sizes, rounds, min_seconds, threads, tmp):
    kwargs, side = MODELS[name]
    torch.manual_seed(0)
    net = randomize_norms(get_model(name.split('_')[0], num_classes=10, **kwargs))
    f = export_packed(net, tmp / f'{name}.safetensors', input_size=side)
    o = export_onnx(net, tmp / f'{name}.onnx', input_size=side)
    variants = dict(float=net, packed_unfolded=load_packed(f, fold=False), packed=load_packed(f))
    sessions = dict(onnxruntime=onnx_session(o, threads=threads)[0], onnxruntime_optimized=onnx_session(o, True, threads)[0])
    info = dict(model=name, get_model=kwargs, input_size=side, folded=variants['packed'].export_info['folded'],
                packed_bytes=f.stat().st_size, onnx_bytes=o.stat().st_size, batches=[])
    g = torch.Generator().manual_seed(1)
    for bs in batch_sizes:
        x = torch.rand(bs, 3, side, side, generator=g) * 2 - 1
        fns = {k: (lambda m=m: m(x)) for k, m in variants.items()}
        fns.update({k: (lambda s=s: run_onnx(s, x)) for k, s in sessions.items()})
        with torch.no_grad():
            ref = net(x)
            same = {k: dict(argmax_mismatches=int((y.argmax(1) != ref.argmax(1)).sum()), max_abs_logit_diff=float((y - ref).abs().max()))
                    for k, y in ((k, fn()) for k, fn in fns.items())}
            times = time_rounds(fns, rounds, min_seconds)
        s = summarize(times)
        for k in s: s[k].update(same[k])
        info['batches'].append(dict(batch_size=bs, variants=s))
        print(f"{name} batch {bs}: " + ", ".join(f"{k} {v['ms_median']:.2f} ms ({v['speedup_vs_float']:.2f}x)" for k, v in s.items()), flush=True)
    return info


def pack_rows(x: np.ndarray) -> np.ndarray:
    "Rows of +-1 values (B, K) as bits (x >= 0) in uint64 words (B, ceil(K/64)); padding bits are 0."
    b = np.packbits(x >= 0, axis=1, bitorder='little')
    b = np.pad(b, ((0, 0), (0, -b.shape[1] % 8)))
    return b.view(np.uint64)


def xnor_linear(xbits: np.ndarray, wbits: np.ndarray, k: int) -> np.ndarray:
    "sum_j x_j w_j of +-1 rows from their bits: K - 2 popcount(x XOR w) (equal padding bits XOR to 0)."
    return k - 2 * np.bitwise_count(xbits[:, None, :] ^ wbits[None, :, :]).sum(-1, dtype=np.int64)


def bench_popcount(batch_sizes, rounds, min_seconds):
    out = []
    g = torch.Generator().manual_seed(2)
    for k, o in ((4608, 1024), (1024, 1024)):  # BinaryNet's dense7 and dense8
        w = torch.randint(0, 2, (o, k), generator=g).float() * 2 - 1
        wbits = pack_rows(w.numpy())
        for bs in batch_sizes:
            x = torch.randn(bs, k, generator=g)  # the real input; both paths binarize it
            fns = {'float': lambda: F.linear(ste_sign(x), w),
                   'xnor_popcount': lambda: torch.from_numpy(xnor_linear(pack_rows(x.numpy()), wbits, k))}
            exact = bool(torch.equal(fns['float']().long(), fns['xnor_popcount']()))
            s = summarize(time_rounds(fns, rounds, min_seconds))
            s['xnor_popcount']['exact'] = exact
            out.append(dict(layer=f"{k}->{o}", batch_size=bs, variants=s))
            print(f"dense {k}->{o} batch {bs}: float {s['float']['ms_median']:.3f} ms, xnor+popcount "
                  f"{s['xnor_popcount']['ms_median']:.3f} ms ({s['xnor_popcount']['speedup_vs_float']:.2f}x), exact {exact}", flush=True)
    return out


def cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--models', nargs='+', default=['binarynet', 'binarynet_layer', 'xnornet', 'birealnet'], choices=list(MODELS))
    ap.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 100])
    ap.add_argument('--threads', type=int, default=1, help='torch and onnxruntime intra-op threads')
    ap.add_argument('--rounds', type=int, default=15, help='interleaved timing rounds')
    ap.add_argument('--min-seconds', type=float, default=0.1, help='each variant runs at least this long per round')
    ap.add_argument('--popcount', action='store_true', help="also time XNOR+popcount dense layers against the float matmul")
    ap.add_argument('--out', default=None, help='JSON results file')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    t0 = time.time()
    res = dict(command='python benchmarks/inference.py ' + ' '.join(sys.argv[1:]),
               machine=dict(cpu=cpu_name(), cores=os.cpu_count(), platform=platform.platform()),
               torch=torch.__version__, numpy=np.__version__, threads=a.threads, rounds=a.rounds,
               onnxruntime=__import__('onnxruntime').__version__, load_average_before=load0, models=[])
    with tempfile.TemporaryDirectory() as tmp:
        for m in a.models: res['models'].append(bench_model(m, a.batch_sizes, a.rounds, a.min_seconds, a.threads, Path(tmp)))
    if a.popcount: res['popcount_dense'] = bench_popcount(a.batch_sizes, a.rounds, a.min_seconds)
    res['load_average_after'] = os.getloadavg()
    res['seconds'] = time.time() - t0
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1) + '\n')
        print(f"wrote {a.out}")


if __name__ == '__main__':
    main()
