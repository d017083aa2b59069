"""Training step time of BinaryNet + Bop2ndOrder in float32 against bf16 autocast, interleaved in the same run
(the library's own `train_step` on a fixed batch). It decides the cpu scale's precision: bf16 is worth a paired
fp32/bf16 accuracy check only where it is clearly faster on the CPU at hand (CPUs with bf16 units, e.g. AMX).

    python benchmarks/precision_cpu.py [--width 16] [--batch-size 100] [--steps 15] [--threads 1] [--out FILE]
"""
import argparse, json, platform, statistics, subprocess, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.train_throughput import make, step_fn  # noqa: E402


def cpu_model() -> str:
    "The CPU's model name (lscpu), for the result file."
    try: out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    except OSError: return platform.processor() or 'unknown'
    return next((l.split(':', 1)[1].strip() for l in out.splitlines() if l.startswith('Model name')), 'unknown')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--width', type=int, default=16)
    ap.add_argument('--batch-size', type=int, default=100)
    ap.add_argument('--steps', type=int, default=15)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    flags = torch.backends.cpu.get_cpu_capability()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.batch_size, 3, 32, 32, generator=g) * 2 - 1
    y = torch.randint(0, 10, (a.batch_size,), generator=g)
    runs = {amp: step_fn(*make('binary', a.width, torch.device('cpu'), False, False)[1:], amp) for amp in (False, True)}
    for f in runs.values():
        for _ in range(a.warmup): f(x, y)
    times = {amp: [] for amp in runs}
    for _ in range(a.steps):  # interleaved, so load changes hit both alike
        for amp, f in runs.items():
            t = time.perf_counter(); f(x, y); times[amp].append(time.perf_counter() - t)
    med = {amp: statistics.median(v) for amp, v in times.items()}
    res = dict(cpu=cpu_model(), cpu_capability=flags, threads=a.threads, torch=torch.__version__, width=a.width,
               batch=a.batch_size, steps=a.steps, fp32_step_s=med[False], bf16_step_s=med[True],
               bf16_vs_fp32_time=med[True] / med[False])
    print(f"{res['cpu']} ({flags}), {a.threads} thread(s), width {a.width}, batch {a.batch_size}: "
          f"fp32 {med[False] * 1e3:.0f} ms/step, bf16 autocast {med[True] * 1e3:.0f} ms/step "
          f"({res['bf16_vs_fp32_time']:.2f}x the fp32 time)")
    if a.out: Path(a.out).write_text(json.dumps(res, indent=2) + '\n')


if __name__ == '__main__':
    main()
