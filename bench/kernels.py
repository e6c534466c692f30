#!/usr/bin/env python
"""Benchmark (not a test): a sweep with kept Jupyter kernels (hit_nb.kernels, the default) against the same sweep with
every papermill notebook in a subprocess of its own (`fresh_kernels=True`): wall time of each, their ratio, and whether
the two results tables agree in every column but the timings.

    python bench/kernels.py                     # make demo's grid sweep: 25 points x 16 epochs, 2 workers (~17 minutes)
    python bench/kernels.py --grid tiny --epochs 2   # a quick look (~2 minutes)

The IS classifier is trained first (once, in the data folder), so that neither side pays for it. Each side sweeps into
a fresh folder; the kept side runs first.
"""
import argparse, os, sys, tempfile, time
from pathlib import Path
import pandas as pd

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--grid', default='demo')
    ap.add_argument('--epochs', type=int, default=16)
    ap.add_argument('--n_samples', type=int, default=2000)
    ap.add_argument('--workers', type=int, default=2)
    a = ap.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    from hit_nb.classifiers import classifier_path, train_classifier
    from hit_nb.grids import grid_points
    from hit_nb.sweep import run_sweep
    clf = classifier_path('mnist5k')
    if not clf.is_file(): train_classifier('mnist5k', out=clf, progress=False)
    root, times, tables = Path(tempfile.mkdtemp()), {}, {}
    for side, fresh in (('kept kernels', False), ('a subprocess per notebook', True)):
        d = root/('fresh' if fresh else 'kept')
        pts = grid_points(a.grid, 'mnist5k', 'ghvae', sweep_dir=d, epochs=a.epochs)
        t0 = time.perf_counter()
        tables[side] = run_sweep(pts, d, n_workers=a.workers, threads_per_worker=1, classifier=clf,
                                 eval_params=dict(n_samples=a.n_samples), progress=False, fresh_kernels=fresh)
        times[side] = time.perf_counter() - t0
        print(f"{side:>26}: {times[side]:7.1f} s for {len(pts)} points ({times[side] / len(pts):.1f} s per point)",
              flush=True)
    (k, tk), (f, tf) = times.items()
    cols = [c for c in tables[k] if c not in ('run_dir', 'train_seconds')]
    same = tables[k][cols].equals(tables[f][cols])
    print(f"subprocesses / kept kernels: {tf / tk:.2f}x wall time ({tf - tk:.0f} s more); results tables "
          f"{'equal' if same else 'DIFFER'} in every column but the timings; load {os.getloadavg()[0]:.2f}")
    return 0 if same else 1

if __name__ == '__main__': sys.exit(main())
