"""Median optimizer-step time of Bop and Bop2ndOrder on BinaryNet's binary weights (10,352,000),
as ratios against torch.optim.Adam(fused=True) and Adam(foreach=True) on the same shapes, same run.

The step is memory traffic: Bop2ndOrder reads g, m, v, w and writes m, v, w, exactly what Adam moves,
so its goal is <= 1.0x fused Adam; Bop moves less (no v), goal <= 0.8x. Optimizers are timed
interleaved (one step of each in turn, after warm-up), so machine noise hits them alike.

The bit-flip optimizers run with `nonfinite='raise'` by default (their default: one host
synchronisation per step, the stacked non-finite check); `--nonfinite skip` times the
synchronisation-free step. The output names the mode it timed.

    python benchmarks/optimizer_step.py [--steps 30] [--device cpu|cuda] [--nonfinite raise|skip] [--out results.json]
"""
import argparse, json, platform, statistics, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bnn_opt.layers import binary_parameters  # noqa: E402
from bnn_opt.models import binarynet  # noqa: E402
from bnn_opt.optimizers import Bop, Bop2ndOrder  # noqa: E402
from bnn_opt.testing import random_binary_params, random_grads  # noqa: E402

GRAD_STD = 1e-3               # gradients N(0, GRAD_STD^2): flips are rare, as in training
FLUSH_BYTES = 512 * 2**20     # rewritten before every timed step, so that each starts with cold caches


def shapes():
    "The binary weight shapes of the paper's BinaryNet (filters 128, dense 1024)."
    with torch.device('meta'):
        m = binarynet()
    return [tuple(p.shape) for p in binary_parameters(m)]


def make_params(shp, device, seed):
    "Random ±1 parameters of shapes `shp` on `device`, each with a random gradient."
    ps = random_binary_params(shp, seed, device)
    for p, g in zip(ps, random_grads(shp, 1, seed + 1, std=GRAD_STD, mean=0.)[0]): p.grad = g.to(device)
    return ps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--no-fused-bop', action='store_true', help='skip the torch.compile paths (no compiler)')
    ap.add_argument('--nonfinite', choices=('raise', 'skip'), default='raise',
                    help="the bit-flip optimizers' nonfinite mode: 'raise' (default: one host sync per step) or 'skip' (none)")
    ap.add_argument('--out', default=None, help='write the results as JSON here')
    a = ap.parse_args()
    dev = torch.device(a.device)
    shp = shapes()
    n = sum(torch.Size(s).numel() for s in shp)
    nf = a.nonfinite
    cases = {
        'adam_fused': lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
        'adam_foreach': lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
        'bop_single': lambda ps: Bop(ps, foreach=False, nonfinite=nf),
        'bop_foreach': lambda ps: Bop(ps, foreach=True, nonfinite=nf),
        'bop2_single': lambda ps: Bop2ndOrder(ps, foreach=False, nonfinite=nf),
        'bop2_foreach': lambda ps: Bop2ndOrder(ps, foreach=True, nonfinite=nf),
        'bop2_corrected_foreach': lambda ps: Bop2ndOrder(ps, bias_correction=True, foreach=True, nonfinite=nf),
    }
    if not a.no_fused_bop:
        cases.update({'bop_fused': lambda ps: Bop(ps, fused=True, nonfinite=nf),
                      'bop2_fused': lambda ps: Bop2ndOrder(ps, fused=True, nonfinite=nf),
                      'bop2_corrected_fused': lambda ps: Bop2ndOrder(ps, bias_correction=True, fused=True, nonfinite=nf)})
    opts = {k: f(make_params(shp, dev, 0)) for k, f in cases.items()}
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == 'cuda' else (lambda: None)
    t0 = time.perf_counter()
    for _ in range(a.warmup):
        for o in opts.values(): o.step()
    sync()
    print(f"warm-up (incl. compilation): {time.perf_counter() - t0:.1f}s", flush=True)
    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.float32, device=dev)
    times = {k: [] for k in opts}
    for _ in range(a.steps):
        for k, o in opts.items():
            flush.fill_(1.0); sync(); t = time.perf_counter(); o.step(); sync(); times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    dname = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    syncs = "one host sync per step" if nf == 'raise' else "no host sync"
    print(f"device: {dname}; torch {torch.__version__}; {n:,} binary weights in {len(shp)} tensors; median of {a.steps} steps")
    print(f"bit-flip optimizers timed with nonfinite='{nf}' ({syncs})")
    print(f"{'optimizer':<24}{'ms/step':>10}{'vs Adam fused':>16}{'vs Adam foreach':>18}")
    for k, v in med.items():
        print(f"{k:<24}{v:>10.2f}{v / med['adam_fused']:>15.2f}x{v / med['adam_foreach']:>17.2f}x")
    goals = []
    if 'bop2_fused' in med: goals.append(('Bop2ndOrder fused <= 1.0x fused Adam', med['bop2_fused'] / med['adam_fused'], 1.0))
    if 'bop_fused' in med: goals.append(('Bop fused <= 0.8x fused Adam', med['bop_fused'] / med['adam_fused'], 0.8))
    for name, r, lim in goals: print(f"goal {name}: {r:.2f}x -> {'met' if r <= lim else 'NOT met'}")
    if a.out:
        Path(a.out).write_text(json.dumps(dict(device=dname, torch=torch.__version__, params=n, steps=a.steps, nonfinite=nf,
                                               median_ms=med, ratio_vs_adam_fused={k: v / med['adam_fused'] for k, v in med.items()},
                                               ratio_vs_adam_foreach={k: v / med['adam_foreach'] for k, v in med.items()}), indent=2))


if __name__ == '__main__':
    main()
