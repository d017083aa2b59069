"""Median optimizer-step time of Bop and Bop2ndOrder on BinaryNet's binary weights (10,352,000),
as ratios against torch.optim.Adam(fused=True) and Adam(foreach=True) on the same shapes, same run.

The step is memory traffic: Bop2ndOrder reads g, m, v, w and writes m, v, w, exactly what Adam moves,
so its goal is <= 1.0x fused Adam; Bop moves less (no v), goal <= 0.8x. Optimizers are timed
interleaved (one step of each in turn, after warm-up), so machine noise hits them alike.

    python benchmarks/optimizer_step.py [--steps 30] [--device cpu|cuda] [--out results.json]
"""
import argparse, json, platform, statistics, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bnn_opt.layers import binary_parameters  # noqa: E402
from bnn_opt.models import binarynet  # noqa: E402
from bnn_opt.optimizers import Bop, Bop2ndOrder  # noqa: E402


def shapes():
    "The binary weight shapes of the paper's BinaryNet (filters 128, dense 1024)."
    with torch.device('meta'):
        m = binarynet()
    return [tuple(p.shape) for p in binary_parameters(m)]


def make_params(shp, device, seed):
    g = torch.Generator().manual_seed(seed)
    ps = []
    for s in shp:
        p = torch.nn.Parameter((torch.randint(0, 2, s, generator=g).float() * 2 - 1).to(device))
        p.grad = (torch.randn(s, generator=g) * 1e-3).to(device)
        ps.append(p)
    return ps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--no-fused-bop', action='store_true', help='skip the torch.compile paths (no compiler)')
    ap.add_argument('--out', default=None, help='write the results as JSON here')
    a = ap.parse_args()
    dev = torch.device(a.device)
    shp = shapes()
    n = sum(torch.Size(s).numel() for s in shp)
    cases = {
        'adam_fused': lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
        'adam_foreach': lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
        'bop_single': lambda ps: Bop(ps, foreach=False),
        'bop_foreach': lambda ps: Bop(ps, foreach=True),
        'bop2_single': lambda ps: Bop2ndOrder(ps, foreach=False),
        'bop2_foreach': lambda ps: Bop2ndOrder(ps, foreach=True),
        'bop2_corrected_foreach': lambda ps: Bop2ndOrder(ps, bias_correction=True, foreach=True),
    }
    if not a.no_fused_bop:
        cases.update({'bop_fused': lambda ps: Bop(ps, fused=True),
                      'bop2_fused': lambda ps: Bop2ndOrder(ps, fused=True),
                      'bop2_corrected_fused': lambda ps: Bop2ndOrder(ps, bias_correction=True, fused=True)})
    opts = {k: f(make_params(shp, dev, 0)) for k, f in cases.items()}
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == 'cuda' else (lambda: None)
    t0 = time.perf_counter()
    for _ in range(a.warmup):
        for o in opts.values(): o.step()
    sync()
    print(f"warm-up (incl. compilation): {time.perf_counter() - t0:.1f}s", flush=True)
    # every timed step starts with cold caches: a 512 MB buffer is rewritten before it
    flush = torch.empty(128 * 2**20, dtype=torch.float32, device=dev)
    times = {k: [] for k in opts}
    for _ in range(a.steps):
        for k, o in opts.items():
            flush.fill_(1.0); sync(); t = time.perf_counter(); o.step(); sync(); times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    dname = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"device: {dname}; torch {torch.__version__}; {n:,} binary weights in {len(shp)} tensors; median of {a.steps} steps")
    print(f"{'optimizer':<24}{'ms/step':>10}{'vs Adam fused':>16}{'vs Adam foreach':>18}")
    for k, v in med.items():
        print(f"{k:<24}{v:>10.2f}{v / med['adam_fused']:>15.2f}x{v / med['adam_foreach']:>17.2f}x")
    goals = []
    if 'bop2_fused' in med: goals.append(('Bop2ndOrder fused <= 1.0x fused Adam', med['bop2_fused'] / med['adam_fused'], 1.0))
    if 'bop_fused' in med: goals.append(('Bop fused <= 0.8x fused Adam', med['bop_fused'] / med['adam_fused'], 0.8))
    for name, r, lim in goals: print(f"goal {name}: {r:.2f}x -> {'met' if r <= lim else 'NOT met'}")
    if a.out:
        Path(a.out).write_text(json.dumps(dict(device=dname, torch=torch.__version__, params=n, steps=a.steps,
                                               median_ms=med, ratio_vs_adam_fused={k: v / med['adam_fused'] for k, v in med.items()},
                                               ratio_vs_adam_foreach={k: v / med['adam_foreach'] for k, v in med.items()}), indent=2))


if __name__ == '__main__':
    main()
