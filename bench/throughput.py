#!/usr/bin/env python
"""Benchmark (not a test): runs per hour of a β-grid sweep, `hit_nb.sweep.run_sweep` against the reference's way.

- **sweep**: `run_sweep` on a Dask LocalCluster of 2 worker processes x 1 torch thread; every run is trained and evaluated
  through papermill (`nbs/train.ipynb`, `nbs/evaluate.ipynb`), two runs at a time.
  The workers keep their Jupyter kernels between runs (`WarmKernels`); `--fresh_kernels` starts two per run instead.
- **sequential**: the same runs one after another in this one process with torch's default number of threads, calling
  `train` and `evaluate_run` directly (no papermill, no kernel start-up, no notebook plots): hit_nb's own code in a loop.
- **reference way**: the same runs one after another in this process, trained the way the reference's train.py trains
  (bench/train_step.py's reference-style model and step, which compute the same loss as ours on the same batch and noise:
  separate mu/std heads, torch.distributions, CPU noise, a DataLoader with a PIL image and ToTensor per image,
  4 .item() per step, the state_dict saved every epoch), each followed by hit_nb's `evaluate_run` of that point — timed
  on the sequential run's directory, so the baseline gets our evaluation for free (the reference's own evaluation is
  slower still: bench/mi.py). Its rows are "reference training + hit_nb evaluation".

Before them it measures what the machine allows: one pure training (hit_nb's `train`, 1 thread, no notebook) alone, then
`--workers` copies of it at once. Their ratio is the most any runner can gain from parallel processes here (on the
2-core CI-class machine with a quiet host: 2.0-2.3 in three runs, so the two cores do not slow each other down on
pure training; one sample each, so it is as noisy as the host).

All three train and evaluate exactly the same configurations (the IS classifier is trained once beforehand, not timed).
Prints the wall time and runs/hour of each mode and the ratios, and where a sweep run's time goes (training, evaluation,
and the papermill/kernel/notebook overhead, read from the executed notebooks' papermill metadata).

    python bench/throughput.py --epochs 6 --n_samples 2000   # make bench-sweep: the demo grid, 6 epochs (about 15 minutes on 2 cores)
    python bench/throughput.py              # the demo 5x5 grid, 2 epochs per run (about 8 minutes on 2 cores)
    python bench/throughput.py --quick      # the tiny 2x2 grid (about 2-3 minutes)
    python bench/throughput.py --grid tiny --epochs 10   # longer runs: the papermill overhead matters less

Run it without OMP_NUM_THREADS set, so that the sequential mode gets torch's default threads (all cores).
"""
import argparse, json, math, os, statistics, sys, tempfile, time
from pathlib import Path

import torch

try: import hit_nb
except ImportError: sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hit_nb.sweep import run_sweep
from hit_nb.grids import grid_points
from hit_nb.results import results_table
from hit_nb.train import train
from hit_nb.evaluate import evaluate_run
from hit_nb.classifiers import train_classifier
from hit_nb.data import load_dataset
from hit_nb.models import build_model
from hit_nb.config import make_config
sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step as ts                                  # the reference-style model and step (bench/train_step.py)

def ref_train(p, data, out):
    "Train point `p` as the reference's train.py does (see the module docstring); returns the seconds it took."
    cfg = make_config(**{k: v for k, v in p.items() if k != 'out_dir'})
    t0 = time.perf_counter()
    torch.manual_seed(cfg['seed'])
    ref = ts.ref_from_ours(build_model(cfg['model'], cfg['dataset'], n_layers=cfg['n_layers'], sigma_x=cfg['sigma_x']))
    raw = data.train_x * 255 if data.likelihood == 'bernoulli' else data.train_x            # back to 0..255 pixels
    loader = torch.utils.data.DataLoader(ts.RefImages(raw, data.train_y, binary=data.likelihood == 'bernoulli'),
                                         batch_size=cfg['batch_size'], shuffle=True, num_workers=0,
                                         generator=torch.Generator().manual_seed(cfg['seed']))
    opt = torch.optim.Adam(ref.parameters(), lr=cfg['lr'])
    beta2, beta1 = cfg['betas'][0], cfg['betas'][1]
    out.mkdir(parents=True, exist_ok=True)
    ref.train()
    for epoch in range(cfg['epochs']):
        log = []
        for x, _ in loader:
            loss, ll, kl_z, kl_y = ref(x, beta2, beta1)
            opt.zero_grad(); loss.backward(); opt.step()
            log.append((loss.item(), ll.mean().item(), kl_z.mean().item(), kl_y.mean().item()))
        torch.save(ref.state_dict(), out/'vae.pth')
    assert all(map(math.isfinite, log[-1])), log[-1]
    return time.perf_counter() - t0

CEILING = """import json, sys, torch
from hit_nb.train import train
m = train(progress=False, threads=1, **json.loads(sys.argv[1]))
print(m['train_seconds'])"""

def parallel_ceiling(p, out, workers):
    "What `workers` processes can do on this machine: seconds of one pure training alone, then with `workers` copies at once; returns (alone, together, speed-up)."
    import subprocess
    def start(i, tag):
        q = dict({k: v for k, v in p.items() if k != 'out_dir'}, out_dir=str(out/'ceiling'/f'{tag}{i}'))
        return subprocess.Popen([sys.executable, '-c', CEILING, json.dumps(q)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, 'OMP_NUM_THREADS': '1'})
    alone = float(start(0, 'alone').communicate()[0].split()[-1])
    procs = [start(i, 'together') for i in range(workers)]
    together = statistics.mean(float(q.communicate()[0].split()[-1]) for q in procs)
    return alone, together, workers * alone / together

def cell_seconds(nb_path, needle):
    "Seconds papermill recorded for the first cell whose source contains `needle`, and for the whole notebook."
    nb = json.loads(Path(nb_path).read_text())
    cell = next((c for c in nb['cells'] if needle in ''.join(c['source'])), None)
    return (cell['metadata'].get('papermill', {}).get('duration') or 0.) if cell else 0., nb['metadata']['papermill']['duration'] or 0.

def load():
    return '/'.join(f'{x:.1f}' for x in os.getloadavg())

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--grid', default='demo', help="grid name (default demo = 5x5)")
    ap.add_argument('--quick', action='store_true', help="the tiny 2x2 grid")
    ap.add_argument('--epochs', type=int, default=2, help="epochs per run (default 2)")
    ap.add_argument('--batch_size', type=int, default=None, help="batch size (default: the mnist5k preset, 128)")
    ap.add_argument('--n_samples', type=int, default=1000, help="Inception Score samples per evaluation (default 1000)")
    ap.add_argument('--workers', type=int, default=2, help="sweep workers (1 thread each)")
    ap.add_argument('--out', default=None, help="folder for the runs (default: a temporary folder)")
    ap.add_argument('--fresh_kernels', action='store_true', help="the sweep starts two kernels per run (no kept kernels)")
    a = ap.parse_args()
    grid = 'tiny' if a.quick else a.grid
    out = Path(a.out or tempfile.mkdtemp(prefix='hit_bench_'))
    tp = dict(epochs=a.epochs, **({'batch_size': a.batch_size} if a.batch_size else {}))
    seq_pts = grid_points(grid, 'mnist5k', 'ghvae', sweep_dir=out/'sequential', **tp)
    sw_pts = grid_points(grid, 'mnist5k', 'ghvae', sweep_dir=out/'sweep', **tp)
    n = len(seq_pts)
    print(f"grid {grid}: {n} runs of mnist5k GHVAE, {a.epochs} epochs, IS on {a.n_samples} samples; {os.cpu_count()} cores; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; torch default threads {torch.get_num_threads()}; folder {out}")
    clf = out/'mnist5k_classifier.pt'
    if not clf.exists(): train_classifier('mnist5k', out=clf, progress=False)

    alone, together, ceiling = parallel_ceiling(seq_pts[len(seq_pts) // 2], out, a.workers)
    print(f'machine: one pure training alone {alone:.1f} s, {a.workers} at once {together:.1f} s each: {a.workers} processes do '
          f'{ceiling:.2f}x the work of one; load {load()}', flush=True)

    print(f'sequential (one process, torch default threads = {torch.get_num_threads()}, no papermill); load {load()}', flush=True)
    t0, seq_train, seq_eval = time.perf_counter(), [], []
    for i, p in enumerate(seq_pts):
        m = train(progress=False, **p)
        t1 = time.perf_counter()
        evaluate_run(p['out_dir'], classifier=clf, n_samples=a.n_samples, progress=False)
        seq_eval.append(time.perf_counter() - t1); seq_train.append(m['train_seconds'])
        print(f'  {i + 1}/{n} {Path(p["out_dir"]).name}: train {m["train_seconds"]:.1f} s, evaluate {seq_eval[-1]:.1f} s', flush=True)
    seq_wall = time.perf_counter() - t0

    print(f'reference way (one process, torch default threads, reference-style training + hit_nb evaluation); load {load()}', flush=True)
    data, ref_times = load_dataset('mnist5k'), []
    for i, p in enumerate(seq_pts):
        ref_times.append(ref_train(p, data, out/'reference'/Path(p['out_dir']).name))
        print(f'  {i + 1}/{n}: reference-style training {ref_times[-1]:.1f} s (hit_nb: {seq_train[i]:.1f} s)', flush=True)
    ref_wall = sum(ref_times) + sum(seq_eval)

    print(f'sweep (run_sweep: {a.workers} Dask workers x 1 thread, papermill); load {load()}', flush=True)
    t0 = time.perf_counter()
    df = run_sweep(sw_pts, out/'sweep', n_workers=a.workers, threads_per_worker=1, classifier=clf, eval_params=dict(n_samples=a.n_samples),
                   fresh_kernels=a.fresh_kernels)
    sw_wall = time.perf_counter() - t0
    assert (df.status == 'done').all(), df[['run_dir', 'status', 'reason']]
    tr_nb, ev_cell, ev_nb = [], [], []
    for r in df.run_dir:
        _, d = cell_seconds(out/'sweep'/r/'train.ipynb', 'metrics = train('); tr_nb.append(d)
        c, d = cell_seconds(out/'sweep'/r/'evaluate.ipynb', 'evaluate_run('); ev_cell.append(c); ev_nb.append(d)
    sw_train = df.train_seconds.tolist()
    print(f'done; load {load()}')

    mean = statistics.mean
    print(f"\n{'mode':<44} {'wall s':>8} {'runs/hour':>10}")
    print(f"{'sequential, 1 process, ' + str(torch.get_num_threads()) + ' torch threads':<44} {seq_wall:8.1f} {3600 * n / seq_wall:10.1f}")
    print(f"{'reference way (ref training + hit_nb evaluation)':<44} {ref_wall:8.1f} {3600 * n / ref_wall:10.1f}")
    kind = 'fresh kernels' if a.fresh_kernels else 'kept kernels'
    print(f"{'run_sweep, ' + str(a.workers) + ' workers x 1 thread, ' + kind:<44} {sw_wall:8.1f} {3600 * n / sw_wall:10.1f}")
    print(f"ratio sweep / reference way:           {ref_wall / sw_wall:.2f}x   (goal >= 2x)")
    print(f"ratio sweep / hit_nb sequential:       {seq_wall / sw_wall:.2f}x   (the runner alone)")
    print(f"ratio hit_nb / reference training:     {sum(ref_times) / sum(seq_train):.2f}x   (seconds of training, same threads)")
    print(f"machine ceiling: {a.workers} single-thread processes do {ceiling:.2f}x the training of one (the most any runner can add here)")
    over = [t + e - s - c for t, e, s, c in zip(tr_nb, ev_nb, sw_train, ev_cell)]
    print(f"\nper run, mean seconds         training   evaluation   papermill + kernel + imports + plots")
    print(f"  sequential                   {mean(seq_train):8.1f}   {mean(seq_eval):10.1f}   {0:8.1f}")
    print(f"  reference way                {mean(ref_times):8.1f}   {mean(seq_eval):10.1f}   {0:8.1f}")
    print(f"  sweep (inside notebooks)     {mean(sw_train):8.1f}   {mean(ev_cell):10.1f}   {mean(over):8.1f}" + ("  (+ ~1-2 s papermill process start)" if a.fresh_kernels else ""))
    print(f"  sweep wall per run per worker: {a.workers * sw_wall / n:.1f} s")

if __name__ == '__main__': main()
