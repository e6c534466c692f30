#!/usr/bin/env python
"""Benchmark (not a test): what the TensorBoard log (`hit_nb.tensorboard`) costs a training run, on one CPU thread.

Three settings of the same run (the bundled digits, mnist5k, two-layer GHVAE, batch 128: 32 steps per epoch) are
trained through the library's `train`, alternating in one process (the order flips every round), each from scratch:

    off      tensorboard=False
    scalars  the log with its per-epoch scalars, images only at the end (tb_image_every larger than the run)
    images   the log with scalars and both image grids every epoch (what the default gives runs under 20 epochs)

Reported, as medians over the rounds: seconds per training step inside the epochs (the time `train` records as
`train_seconds`, divided by the steps: the step itself, which logging must not touch), and the wall-clock seconds per
epoch of the whole `train` call (checkpoints, the log, the final test-set metrics), each as a ratio to `off`. The cost
of the log's two calls per epoch is also timed alone (median of 20 calls each), for the MNIST model and the paper's
3x32x32 GHVAE, against that model's measured training step.

    python bench/tb_logging.py             # 5 rounds of 10 epochs (about 4 minutes on a quiet core)
    python bench/tb_logging.py --smoke     # seconds: every stage once, tiny (a test runs this)
"""
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path
import torch
try: import hit_nb
except ImportError:                                      # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hit_nb.config import make_config
from hit_nb.data import ImageData, load_dataset
from hit_nb.models import build_model
from hit_nb.tensorboard import RunLog, tb_api
from hit_nb.train import train
from hit_nb.trainer import ModelStep, start_run, tune_malloc

MODES = {'off': dict(tensorboard=False), 'scalars': dict(tb_image_every=10**6), 'images': dict(tb_image_every=1)}

def one_run(tmp, mode, epochs, batch_size, r):
    "(train seconds per step, wall seconds per epoch) of one fresh run in `mode`."
    t0 = time.perf_counter()
    m = train(progress=False, out_dir=Path(tmp)/f'{mode}-{r}', epochs=epochs, batch_size=batch_size, threads=1,
              **MODES[mode])
    wall = time.perf_counter() - t0
    return m['train_seconds'] / (epochs * -(-4000 // batch_size)), wall / epochs

def log_calls(model_name, dataset, n=20):
    "Median seconds of RunLog.epoch and of RunLog.images, and of one training step (batch 256) of this model."
    if dataset == 'mnist5k': data = load_dataset('mnist5k')
    else:
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8, generator=g)
        y = torch.zeros(512, dtype=torch.long)
        data = ImageData(dataset, x, y, x[:64], y[:64], 'gaussian')
    cfg = make_config(dataset=dataset, model=model_name, epochs=10, batch_size=256, device='cpu')
    model = build_model(model_name, dataset)
    with tempfile.TemporaryDirectory() as tmp:
        log = RunLog(tmp, cfg)
        rec = dict(epoch=1, loss=100., distortion=80., rate_z2=5., rate_z1=15., kl_weight=1.)
        t_scalar = []
        for i in range(n):
            t0 = time.perf_counter(); log.epoch(dict(rec, epoch=i + 1)); t_scalar.append(time.perf_counter() - t0)
        t_image = []
        for i in range(n):
            t0 = time.perf_counter(); log.images(model, data, i + 1, final=True); t_image.append(time.perf_counter() - t0)
            model.train()
    step = ModelStep(start_run(dict(cfg, out_dir=None)))
    x = data.to_float(data.train_x[:256]) if len(data.train_x) >= 256 else data.to_float(data.train_x)
    t_step = []
    for i in range(max(5, n // 2)):
        t0 = time.perf_counter(); step(x, step.betas); t_step.append(time.perf_counter() - t0)
    med = statistics.median
    return dict(epoch_log_ms=1e3 * med(t_scalar), images_log_ms=1e3 * med(t_image), step_ms=1e3 * med(t_step[2:]))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--batch_size', type=int, default=128)
    ap.add_argument('--smoke', action='store_true', help='every stage once, tiny')
    ap.add_argument('--json', help='also write the numbers here')
    a = ap.parse_args()
    if a.smoke: a.rounds, a.epochs, a.batch_size = 1, 1, 1000
    if tb_api() is None: sys.exit('bench/tb_logging.py: TensorBoard is not installed (pip install tensorboard)')
    torch.set_num_threads(1); tune_malloc()
    load_dataset('mnist5k')
    print(f'load average {os.getloadavg()[0]:.2f}; {a.rounds} rounds of {a.epochs} epochs, batch {a.batch_size}, '
          f'one thread', flush=True)
    res = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        one_run(tmp, 'off', 1, a.batch_size, 'warm-up')                   # imports, allocator, caches: not counted
        for r in range(a.rounds):
            for mode in (list(MODES) if r % 2 == 0 else list(MODES)[::-1]):
                res[mode].append(one_run(tmp, mode, a.epochs, a.batch_size, r))
    med = {m: tuple(statistics.median(v[i] for v in res[m]) for i in (0, 1)) for m in MODES}
    out = dict(load_start=os.getloadavg()[0], rounds=a.rounds, epochs=a.epochs, batch_size=a.batch_size,
               step_s={m: med[m][0] for m in MODES}, epoch_wall_s={m: med[m][1] for m in MODES},
               step_ratio={m: med[m][0] / med['off'][0] for m in MODES},
               epoch_ratio={m: med[m][1] / med['off'][1] for m in MODES})
    print(f"{'setting':>8} {'ms/step':>9} {'step ratio':>11} {'s/epoch (wall)':>15} {'epoch ratio':>12}")
    for m in MODES:
        print(f"{m:>8} {1e3 * med[m][0]:9.2f} {out['step_ratio'][m]:11.3f} {med[m][1]:15.3f} {out['epoch_ratio'][m]:12.3f}")
    n = 3 if a.smoke else 20
    out['calls'] = {f'{mo}-{ds}': log_calls(mo, ds, n) for mo, ds in (('ghvae', 'mnist5k'), ('ghvae', 'svhn'))}
    for k, c in out['calls'].items():
        print(f"{k}: log of an epoch's scalars {c['epoch_log_ms']:.2f} ms, both image grids {c['images_log_ms']:.1f} ms, "
              f"one training step (batch 256) {c['step_ms']:.1f} ms")
    out['load_end'] = os.getloadavg()[0]
    print(f"load average at the end {out['load_end']:.2f}")
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1))

if __name__ == '__main__': main()
