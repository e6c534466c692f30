#!/usr/bin/env python
"""Benchmark (not a test): rate-plane points per CPU-hour of one rate atlas (`hit_nb.atlas`, one beta-conditioned model
trained for the whole beta box, then evaluated at each point) against the grid sweep (one model trained per point), on
the demo grid of the bundled digits (mnist5k, two-layer GHVAE, 5 x 5 points).

Both sides run in this process, on one torch thread, through the library's own entry points: `train` (a grid point for
E epochs; the atlas for 2.5E epochs, as `make demo`: at its 1.15x step cost, 2.9x one point's compute) and `evaluate_run` / `evaluate_atlas` (every metric
of a point: rates, PSNR, IS, I_q, the eight probes). The grid point and the atlas are trained once each; the
evaluations are timed on a few points and scaled to the 25 of the grid:

    grid:  25 points in 25 x (train E epochs + evaluate one point)
    atlas: 25 points in   1 x (train 2.5E epochs) + 25 x (evaluate one point)

It also times one training step of each (alternating, medians): the conditioning's overhead per step.

    python bench/atlas.py                 # E = 16 as the demo (about 3 minutes on a quiet core)
    python bench/atlas.py --epochs 4      # shorter
    python bench/atlas.py --forms         # the FiLM conditioning networks of nbs/03a_atlas.ipynb compared (about 8 min)
    python bench/atlas.py --plane         # the paper's 21 x 21 plane from one atlas (evaluate_plane, 2 workers)

--plane times the whole plane instead: one grid point trained for E epochs and evaluated with the plane's metrics
(`evaluate_run` with the probes of `PLANE_PROBES`: every metric of Fig. 1), against one atlas trained 2.5E epochs and
`evaluate_plane` at the 441 points of the paper's grid on `--workers` processes (the CPU seconds of all of them
counted, not the wall time):

    grid:  441 points in 441 x (train E epochs + evaluate one point)
    atlas: 441 points in   1 x (train 2.5E epochs) + evaluate_plane's CPU seconds
    python bench/atlas.py --smoke         # seconds: every stage once, tiny (a test runs this)
"""
import argparse, json, os, resource, shutil, statistics, sys, tempfile, time
from pathlib import Path
import torch
try: import hit_nb
except ImportError:                                      # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import hit_nb.config as config
from hit_nb.atlas import conditioned
from hit_nb.classifiers import classifier_path, train_classifier
from hit_nb.config import make_config
from hit_nb.data import load_dataset
from hit_nb.evaluate import evaluate_run
from hit_nb.atlas_eval import evaluate_atlas, evaluate_plane, PLANE_PROBES
from hit_nb.metrics import rd_metrics
from hit_nb.runs import load_run
from hit_nb.atlas import conditioned_loss, sample_betas
from hit_nb.train import train
from hit_nb.trainer import ModelStep, start_run, tune_malloc

N_POINTS = 25                                             # the demo grid, 5 x 5
FORM_POINTS = [(0.1, 0.1), (0.1, 10), (1, 1), (10, 0.1), (10, 10), (0.316, 3.16), (3.16, 0.316)]

def atlas_epochs(epochs:int) -> int: return max(1, 5 * epochs // 2)   # as ATLAS_EPOCHS of the Makefile

def timed(f):
    t0 = time.perf_counter(); out = f(); return time.perf_counter() - t0, out

def step_times(budget:float, batch_size:int=256, min_rounds:int=10):
    "Median seconds of one training step: the plain GHVAE at (1, 1) and the atlas (per-image betas), alternating."
    data = load_dataset('mnist5k')
    x = next(iter(data.batches('train', batch_size)))[0]
    out = Path(tempfile.mkdtemp())
    plain = ModelStep(start_run(make_config(dataset='mnist5k', beta2=1., beta1=1., out_dir=out/'p')))
    atlas = ModelStep(start_run(make_config(dataset='mnist5k', atlas=True, out_dir=out/'a')))
    atlas.loss_fn, box = conditioned_loss, atlas.model.beta_box            # as the trainer's AtlasBetas part
    sides = {'plain': lambda: plain(x, plain.betas),
             'atlas': lambda: atlas(x, sample_betas(len(x), box))}
    for f in list(sides.values()) * 2: f()                                  # warm-up
    times, t_end, r = {k: [] for k in sides}, time.monotonic() + budget, 0
    while r < min_rounds or time.monotonic() < t_end:
        for k in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            t0 = time.perf_counter(); sides[k](); times[k].append(time.perf_counter() - t0)
        r += 1
    return {k: statistics.median(v) for k, v in times.items()}, r

def points_per_hour(epochs:int, n_eval:int, n_samples:int, smoke:bool=False):
    "Training and evaluation seconds of each side, and the points per CPU-hour they imply."
    tmp = Path(tempfile.mkdtemp())
    try: return _points_per_hour(tmp, epochs, n_eval, n_samples, smoke)
    finally: shutil.rmtree(tmp, ignore_errors=True)

def _points_per_hour(tmp, epochs, n_eval, n_samples, smoke):
    clf = classifier_path('mnist5k')
    if not clf.is_file() and smoke: clf = Path(train_classifier(out=tmp/'clf.pt', epochs=1, progress=False)['path'])
    elif not clf.is_file():
        print(f"training the mnist5k IS classifier once: {clf}", flush=True); train_classifier(progress=False)
    t_grid, _ = timed(lambda: train(progress=False, dataset='mnist5k', beta2=1., beta1=1., epochs=epochs,
                                    out_dir=tmp/'grid', threads=1))
    e_grid, _ = timed(lambda: evaluate_run(tmp/'grid', classifier=clf, n_samples=n_samples, progress=False))
    t_atlas, _ = timed(lambda: train(progress=False, dataset='mnist5k', atlas=True, epochs=atlas_epochs(epochs),
                                     out_dir=tmp/'atlas', threads=1))
    pts = [[0.1, 0.1], [1., 1.], [10., 0.316227766]][:n_eval]
    e_atlas, _ = timed(lambda: evaluate_atlas(tmp/'atlas', pts, classifier=clf, n_samples=n_samples, progress=False))
    e_atlas /= len(pts)
    grid_s, atlas_s = N_POINTS * (t_grid + e_grid), t_atlas + N_POINTS * e_atlas
    return dict(epochs=epochs, train_grid_point_s=t_grid, eval_grid_point_s=e_grid, train_atlas_s=t_atlas,
                eval_atlas_point_s=e_atlas, grid_s=grid_s, atlas_s=atlas_s, grid_points_per_h=3600 * N_POINTS / grid_s,
                atlas_points_per_h=3600 * N_POINTS / atlas_s, ratio=grid_s / atlas_s)

def cpu_seconds() -> float:
    "CPU seconds (user + system) of this process and of its children that have ended."
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))

def plane_cost(epochs:int, n_samples:int, workers:int, grid:str='paper', smoke:bool=False) -> dict:
    "Seconds of a grid point and of the atlas's plane (evaluate_plane at every point of `grid`), and the ratio."
    tmp = Path(tempfile.mkdtemp())
    try:
        clf = classifier_path('mnist5k')
        if not clf.is_file() and smoke:
            clf = Path(train_classifier(out=tmp/'clf.pt', epochs=1, progress=False)['path'])
        elif not clf.is_file():
            print(f"training the mnist5k IS classifier once: {clf}", flush=True); train_classifier(progress=False)
        ev = dict(classifier=clf, n_samples=n_samples, progress=False)
        t_grid, _ = timed(lambda: train(progress=False, dataset='mnist5k', beta2=1., beta1=1., epochs=epochs,
                                        out_dir=tmp/'grid', threads=1))
        e_grid, _ = timed(lambda: evaluate_run(tmp/'grid', probes=PLANE_PROBES, **ev))
        t_atlas, _ = timed(lambda: train(progress=False, dataset='mnist5k', atlas=True, epochs=atlas_epochs(epochs),
                                         out_dir=tmp/'atlas', threads=1))
        c0 = cpu_seconds()
        wall, df = timed(lambda: evaluate_plane(tmp/'atlas', grid, workers=workers, **dict(ev, progress=True)))
        cpu, n = cpu_seconds() - c0, len(df)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    grid_s, atlas_s = n * (t_grid + e_grid), t_atlas + cpu
    return dict(epochs=epochs, points=n, workers=workers, n_samples=n_samples, train_grid_point_s=t_grid,
                eval_grid_point_s=e_grid, train_atlas_s=t_atlas, plane_wall_s=wall, plane_cpu_s=cpu, grid_s=grid_s,
                atlas_s=atlas_s, grid_points_per_h=3600 * n / grid_s, atlas_points_per_h=3600 * n / atlas_s,
                ratio=grid_s / atlas_s)

def forms(epochs:int=48, hidden=(0, 16, 64), seeds=(2, 3), ref_epochs:int=16):
    "Test-set rates, PSNR and the loss of Eq. 8 at FORM_POINTS of atlases with each conditioning width and seed."
    data, tmp, rows = load_dataset('mnist5k'), Path(tempfile.mkdtemp()), []
    def at(model, b):
        m = rd_metrics(model, data)
        return dict(rate_z2=m['rate_z2'], rate_z1=m['rate_z1'], psnr=m['psnr'],
                    loss=m['distortion'] + b[0] * m['rate_z2'] + b[1] * m['rate_z1'])
    ref = {}
    for b in FORM_POINTS:                                                   # separate models, the demo grid's training
        out = tmp/f'ref-{b[0]}-{b[1]}'
        train(progress=False, dataset='mnist5k', beta2=b[0], beta1=b[1], epochs=ref_epochs, out_dir=out, threads=1)
        ref[b] = at(load_run(out)[0], b)
    rows.append(dict(form=f'separate models, {ref_epochs} epochs', seed=2, points=ref))
    for h in hidden:
        for s in seeds:
            config.ATLAS_HIDDEN = h                                         # what make_config records for the run
            out = tmp/f'atlas-{h}-{s}'
            train(progress=False, dataset='mnist5k', atlas=True, atlas_gate=False, epochs=epochs, seed=s, out_dir=out,
                  threads=1)                                                # the FiLM forms, as measured then
            atlas = load_run(out)[0]
            with torch.no_grad(): rows.append(dict(form=f'atlas, hidden {h}', seed=s,
                                                   points={b: at(conditioned(atlas, list(b)), b) for b in FORM_POINTS}))
            total = sum(p['loss'] for p in rows[-1]['points'].values())
            print(f"  {rows[-1]['form']}, seed {s}: summed loss {total:.1f}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return rows

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=16, help='epochs of a grid point (the atlas trains 2.5x as many)')
    p.add_argument('--n_eval', type=int, default=3, choices=(1, 2, 3), help='atlas points whose evaluation is timed')
    p.add_argument('--n_samples', type=int, default=2000, help='IS samples per point (as the demo)')
    p.add_argument('--budget', type=float, default=10., help='seconds of step timing per side')
    p.add_argument('--forms', action='store_true', help='compare the conditioning networks instead (03a_atlas)')
    p.add_argument('--plane', action='store_true', help="the paper's 21 x 21 plane from one atlas instead")
    p.add_argument('--workers', type=int, default=2, help='--plane: processes of evaluate_plane, one thread each')
    p.add_argument('--smoke', action='store_true', help='1 epoch, 1 point (--plane: the tiny grid), 200 IS samples')
    p.add_argument('--json', help='also write the numbers to this file')
    a = p.parse_args(argv)
    if a.smoke: a.epochs, a.n_eval, a.n_samples, a.budget = 1, 1, 200, 0.
    torch.set_num_threads(1); tune_malloc()
    print(f"1 torch thread, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    if a.plane:
        res = plane_cost(a.epochs, a.n_samples, a.workers, 'tiny' if a.smoke else 'paper', a.smoke)
        print(f"grid point: train {res['train_grid_point_s']:.1f} s ({a.epochs} epochs) + evaluate "
              f"{res['eval_grid_point_s']:.1f} s; atlas: train {res['train_atlas_s']:.1f} s "
              f"({atlas_epochs(a.epochs)} epochs)")
        print(f"the atlas's plane: {res['points']} points in {res['plane_wall_s']:.0f} s wall on {a.workers} "
              f"processes ({res['plane_cpu_s']:.0f} CPU-s, {res['plane_cpu_s'] / res['points']:.2f} CPU-s a point, "
              f"{a.n_samples} IS samples)")
        print(f"{res['points']} points: sweep {res['grid_s'] / 3600:.2f} CPU-h, "
              f"atlas {res['atlas_s'] / 3600:.3f} CPU-h "
              f"-> {res['grid_points_per_h']:.0f} vs {res['atlas_points_per_h']:.0f} points per CPU-hour: "
              f"atlas / grid = {res['ratio']:.1f}x")
    elif a.forms:
        rows = forms()
        print(f"{'':34s}" + ''.join(f"{str(b):>22s}" for b in FORM_POINTS) + f"{'summed loss':>13s}")
        for r in rows:
            v = r['points'].values()
            cells = ''.join(f"{p['rate_z2']:6.1f}/{p['rate_z1']:5.1f}/{p['loss']:6.1f}".rjust(22) for p in v)
            print(f"{r['form'] + ', seed ' + str(r['seed']):34s}{cells}{sum(p['loss'] for p in v):13.1f}")
        print("cells: R(z2) / R(z1|z2) / loss D + beta2 R(z2) + beta1 R(z1|z2), nats per test image")
        res = [dict(r, points={str(k): v for k, v in r['points'].items()}) for r in rows]
    else:
        st, rounds = step_times(a.budget, min_rounds=2 if a.smoke else 10)
        print(f"training step, batch 256: plain {st['plain'] * 1e3:.1f} ms, atlas {st['atlas'] * 1e3:.1f} ms "
              f"(median of {rounds}); the conditioning costs {st['atlas'] / st['plain']:.2f}x per step", flush=True)
        res = dict(points_per_hour(a.epochs, a.n_eval, a.n_samples, a.smoke), step_plain_s=st['plain'], step_atlas_s=st['atlas'])
        print(f"training compute: the atlas {res['train_atlas_s'] / res['train_grid_point_s']:.2f}x one grid point")
        print(f"grid point: train {res['train_grid_point_s']:.1f} s ({a.epochs} epochs) + evaluate "
              f"{res['eval_grid_point_s']:.1f} s;  atlas: train {res['train_atlas_s']:.1f} s ({atlas_epochs(a.epochs)} epochs), "
              f"evaluate {res['eval_atlas_point_s']:.1f} s per point")
        print(f"demo grid ({N_POINTS} points): sweep {res['grid_s'] / 60:.1f} CPU-min, atlas {res['atlas_s'] / 60:.1f} "
              f"CPU-min -> {res['grid_points_per_h']:.0f} vs {res['atlas_points_per_h']:.0f} points per CPU-hour: "
              f"atlas / grid = {res['ratio']:.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1))

if __name__ == '__main__': main()
