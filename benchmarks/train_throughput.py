"""Training throughput (images/s) of BinaryNet with Bop2ndOrder vs its real-valued twin with Adam
(latent weights, the classic BNN recipe), measured in the same run on the same synthetic batches.

The baseline is the float twin, timed in the same run (an earlier session's Larq 0.14 figures,
~2040 and ~88 images/s at widths 16 and 128, have no result file here and are not compared).
Goals: binary no slower than 1.1x its twin;
one H100: a full CIFAR-10 epoch (50,000 images, batch 100) of BinaryNet in under 5 s.

    python benchmarks/train_throughput.py [--widths 16 128] [--steps 20] [--device cpu|cuda] [--epoch] [--out FILE]
"""
import argparse, json, platform, statistics, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bnn_opt.train import resolve_config, build_model, build_optimizer, step_recipe, train_step  # noqa: E402



def make(kind, width, device, channels_last, fused):
    preset = 'adam_latent' if kind == 'twin' else 'bop2ndorder'
    extra = dict(fused=True) if fused and kind != 'twin' else {}  # Adam has no fused bit-flip kernel: never give it the setting
    c = resolve_config(preset, width=width, device=str(device), **extra)
    torch.manual_seed(0)
    m = build_model(c, 10).to(device)
    if channels_last: m = m.to(memory_format=torch.channels_last)
    return c, m, build_optimizer(c, m)


def step_fn(m, opt, amp):
    "One training step of the library's own loop (`bnn_opt.train.train_step`) on a fixed batch."
    recipe = step_recipe(m, amp)
    return lambda x, y: train_step(m, opt, x, y, recipe)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--widths', type=int, nargs='+', default=[16, 128])
    ap.add_argument('--batch-size', type=int, default=100)
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--channels-last', choices=['on', 'off', 'both'], default='both')
    ap.add_argument('--amp', action='store_true', help='bf16 autocast (default: fp32, as training)')
    ap.add_argument('--fused', action='store_true', help="Bop2ndOrder's fused (torch.compile) step")
    ap.add_argument('--epoch', action='store_true', help='also time one full 50,000-image epoch with the device loader')
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    dev = torch.device(a.device)
    amp = a.amp
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == 'cuda' else (lambda: None)
    dname = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"device: {dname}; torch {torch.__version__}; batch {a.batch_size}; amp {amp}", flush=True)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(a.batch_size, 3, 32, 32, generator=g) * 2 - 1).to(dev)
    y = torch.randint(0, 10, (a.batch_size,), generator=g).to(dev)
    cls = {'on': [True], 'off': [False], 'both': [False, True]}[a.channels_last]
    results = []
    for width in a.widths:
        for cl in cls:
            xs = x.contiguous(memory_format=torch.channels_last) if cl else x
            runs = {k: step_fn(*make(k, width, dev, cl, a.fused)[1:], amp) for k in ('binary', 'twin')}
            for f in runs.values():
                for _ in range(a.warmup): f(xs, y)
            times = {k: [] for k in runs}
            for _ in range(a.steps):  # interleaved
                for k, f in runs.items():
                    sync(); t = time.perf_counter(); f(xs, y); sync(); times[k].append(time.perf_counter() - t)
            ips = {k: a.batch_size / statistics.median(v) for k, v in times.items()}
            r = dict(width=width, channels_last=cl, binary_ips=ips['binary'], twin_ips=ips['twin'],
                     binary_vs_twin_time=ips['twin'] / ips['binary'])
            results.append(r)
            extra = ''
            print(f"width {width:4d} channels_last {str(cl):5}: binary+Bop2ndOrder {ips['binary']:8.1f} img/s, "
                  f"twin+Adam {ips['twin']:8.1f} img/s, binary time / twin time {r['binary_vs_twin_time']:.2f}{extra}", flush=True)
    if a.epoch:
        from bnn_opt.data import DeviceLoader
        width = max(a.widths)
        _, m, opt = make('binary', width, dev, dev.type == 'cuda', a.fused)
        step = step_fn(m, opt, amp)
        X = torch.randint(0, 256, (50000, 3, 32, 32), dtype=torch.uint8, generator=g)
        Y = torch.randint(0, 10, (50000,), generator=g)
        loader = DeviceLoader(X, Y, batch_size=a.batch_size, device=dev, pad=4, flip=True, drop_last=True)
        for i, (xb, yb) in enumerate(loader):  # warm-up epoch fragment
            step(xb.contiguous(memory_format=torch.channels_last) if dev.type == 'cuda' else xb, yb)
            if i == 5: break
        loader.set_epoch(1); sync(); t = time.perf_counter()
        for xb, yb in loader: step(xb.contiguous(memory_format=torch.channels_last) if dev.type == 'cuda' else xb, yb)
        sync(); dt = time.perf_counter() - t
        print(f"full epoch, width {width}: {dt:.2f} s ({50000 / dt:.0f} img/s)")
        results.append(dict(epoch_seconds=dt, width=width))
    if a.out:
        Path(a.out).write_text(json.dumps(dict(device=dname, torch=torch.__version__, batch=a.batch_size, amp=amp,
                                               results=results), indent=2))


if __name__ == '__main__':
    main()
