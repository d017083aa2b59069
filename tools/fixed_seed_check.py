"""Fixed-seed guard for refactors: train a few short runs and save (or compare) their metrics.csv.

    python tools/fixed_seed_check.py save DIR      # before a change: DIR/<name>/metrics.csv
    python tools/fixed_seed_check.py compare DIR   # after it: byte-identical, less the wall-clock column

The runs cover each optimizer, a schedule, layer norm and the latent-weight baseline on the embedded digits
(BinaryNet width 4, 300 images, 2 epochs, one thread), so any change to what a run computes shows up.
"""
import csv, io, subprocess, sys, tempfile
from pathlib import Path

RUNS = {
    'bop': ['--preset', 'bop'],
    'bop_sec52': ['--preset', 'bop_sec52', '--set', 'schedules={"gamma": {"type": "exponential", "decay_rate": 0.1, "decay_epochs": 1, "staircase": true}}'],
    'bop2ndorder': ['--preset', 'bop2ndorder'],
    'bop2ndorder_unbiased_layer': ['--preset', 'bop2ndorder_unbiased', '--norm', 'layer'],
    'bop2ndorder_corrected': ['--preset', 'bop2ndorder_corrected'],
    'bop2ndorder_cifar': ['--preset', 'bop2ndorder_cifar'],
    'pbop': ['--preset', 'pbop'],
    'adam_latent': ['--preset', 'adam_latent'],
}
COMMON = ['--dataset', 'digits', '--width', '4', '--subset', '300', '--epochs', '2', '--batch-size', '50',
          '--seed', '3', '--threads', '1', '--no-progress']
TIME_COLUMNS = ('time', 'epoch_time', 'seconds', 'wall')

def _strip_time(text):
    rows = list(csv.reader(io.StringIO(text)))
    keep = [i for i, c in enumerate(rows[0]) if not any(t in c for t in TIME_COLUMNS)]
    return '\n'.join(','.join(r[i] for i in keep) for r in rows)

def main(mode, out):
    out = Path(out); bad = []
    for name, args in RUNS.items():
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / 'run'
            cmd = [sys.executable, '-m', 'bnn_opt.cli', 'train', *args, *COMMON, '--out', str(run)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            text = (run / 'metrics.csv').read_text()
        if mode == 'save':
            (out / name).mkdir(parents=True, exist_ok=True); (out / name / 'metrics.csv').write_text(text)
        else:
            same = _strip_time(text) == _strip_time((out / name / 'metrics.csv').read_text())
            print(f"{name}: {'identical' if same else 'DIFFERENT'}"); bad += [] if same else [name]
    if bad: sys.exit(f"fixed-seed check: {len(bad)} run(s) changed: {', '.join(bad)}")

if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] not in ('save', 'compare'): sys.exit(__doc__)
    main(*sys.argv[1:])
