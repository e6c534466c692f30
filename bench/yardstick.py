#!/usr/bin/env python
"""Benchmark (not a test): the converged yardstick of the rate atlas. Separate two-layer GHVAEs on the bundled digits
(mnist5k, the preset: batch 128, Adam at a constant 1e-3) at the 3 x 3 points (beta2, beta1) in {0.1, 1, 10}^2, two
seeds each, each trained until its test-set loss of Eq. 8,

    L = D + beta2 R(z2) + beta1 R(z1|z2)       (nats per test image, the reparameterisation noise seeded),

moves by at most `--tol` nats between the middle and the end of training: the loss is measured every `--every` epochs,
and a model stops at the first epoch E (a multiple of 2 x every) with |L(E) - L(E/2)| <= tol (at most `--max_epochs`).
The learning rate is constant, so the model at epoch E is the same whatever the run's last epoch: a run stopped at E is
the run trained for E epochs.

Both cores, one torch thread each: the 18 models are split between two worker processes. Every model keeps its curve in
<curves>/<beta2>-<beta1>-s<seed>.json as it goes (committed: bench/results/yardstick-mnist5k/); a rerun skips the
finished ones (and resumes a killed one from its last checkpoint in <out>, its curve so far kept). At the end a table
per point: the epochs each seed took, its loss and rates there, the seed spread (|L(seed 1) - L(seed 2)|, each at its
own stopping epoch), and how far the loss moved from E/2 to E measured on means of three measurements (the test loss
jitters by about a nat from one measurement to the next at small betas); --json writes it all, with the curves.

    python bench/yardstick.py                          # hours on this 2-core machine: 14 min a model at 640 epochs
    python bench/yardstick.py --smoke                  # seconds: one point, one seed, 4 epochs
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path
import torch
try: import hit_nb
except ImportError:                                      # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hit_nb.metrics import rd_metrics
from hit_nb.train import train
from hit_nb.trainer import Callback, tune_malloc

BETAS = (0.1, 1., 10.)
SEEDS = (1, 2)

def loss_at(m:dict, beta2:float, beta1:float) -> float:
    "Eq. 8 on the test set: D + beta2 R(z2) + beta1 R(z1|z2)."
    return m['distortion'] + beta2 * m['rate_z2'] + beta1 * m['rate_z1']

class Converged(Exception): "The run met the yardstick's criterion; its curve says where."

class Curve(Callback):
    "Every `every` epochs: the test-set rates, distortion and Eq. 8 loss, appended to `path`; stop once converged."
    order = 300                                               # after the checkpoint of the epoch is committed
    def __init__(self, path, every, tol, max_epochs):
        self.path, self.every, self.tol, self.max_epochs = Path(path), every, tol, max_epochs
        self.rec = json.loads(self.path.read_text()) if self.path.exists() else dict(curve=[])
    def after_epoch(self, t):
        e = t.epoch + 1
        if e % self.every: return
        st, cfg = t.runs[0], t.cfg
        with torch.no_grad(): m = rd_metrics(t.shown(0), t.data, 'test', seed=cfg['seed'])
        st.model.train()
        curve = [c for c in self.rec['curve'] if c['epoch'] < e]
        curve.append(dict(epoch=e, loss=loss_at(m, cfg['beta2'], cfg['beta1']), train_seconds=st.seconds,
                          **{k: m[k] for k in ('rate_z2', 'rate_z1', 'distortion', 'psnr')}))
        by = {c['epoch']: c for c in curve}
        self.rec.update(curve=curve)
        if e % (2 * self.every) == 0 and abs(by[e]['loss'] - by[e // 2]['loss']) <= self.tol or e >= self.max_epochs:
            self.rec.update(stopped=e, converged=abs(by[e]['loss'] - by[e // 2]['loss']) <= self.tol)
        self.path.write_text(json.dumps(self.rec, indent=1))
        if 'stopped' in self.rec: raise Converged

def fit(curves:Path, out:Path, beta2, beta1, seed, every, tol, max_epochs) -> dict:
    "Train one model of the yardstick into `out` (or return its finished record), its curve in `curves`."
    path = curves/f'{beta2:g}-{beta1:g}-s{seed}.json'
    if path.exists() and 'stopped' in json.loads(path.read_text()): return json.loads(path.read_text())
    try:
        train(progress=False, callbacks=[Curve(path, every, tol, max_epochs)], dataset='mnist5k', model='ghvae',
              beta2=beta2, beta1=beta1, seed=seed, epochs=max_epochs, threads=1, tensorboard=False,
              out_dir=out/'runs'/f'{beta2:g}-{beta1:g}-s{seed}')
    except Converged: pass
    return json.loads(path.read_text())

def jobs(smoke:bool) -> list:
    if smoke: return [(1., 1., 1)]
    return [(b2, b1, s) for s in SEEDS for b2 in BETAS for b1 in BETAS]

def summary(curves:Path, smoke:bool) -> list:
    "One row per point: the epochs, loss and rates of each seed at its stop, and the seed spread."
    rows = []
    for b2 in BETAS if not smoke else (1.,):
        for b1 in BETAS if not smoke else (1.,):
            recs = [json.loads((curves/f'{b2:g}-{b1:g}-s{s}.json').read_text()) for s in (SEEDS if not smoke else (1,))]
            ends = [next(c for c in r['curve'] if c['epoch'] == r['stopped']) for r in recs]
            moved, smooth = [], []                            # the loss's move from E/2 to E: single and 3-point means
            for r in recs:
                by, e = {c['epoch']: c['loss'] for c in r['curve']}, r['stopped']
                moved.append(abs(by[e] - by[e // 2]))
                late, mid = [by[k] for k in sorted(by) if k <= e][-3:], [by[k] for k in sorted(by) if k <= e // 2][-3:]
                smooth.append(abs(sum(late) / len(late) - sum(mid) / len(mid)))
            rows.append(dict(beta2=b2, beta1=b1, epochs=[r['stopped'] for r in recs],
                             converged=[r['converged'] for r in recs], moved=moved, moved_3=smooth,
                             loss=[c['loss'] for c in ends],
                             rate_z2=[c['rate_z2'] for c in ends], rate_z1=[c['rate_z1'] for c in ends],
                             psnr=[c['psnr'] for c in ends], train_seconds=[c['train_seconds'] for c in ends],
                             seed_spread=max(c['loss'] for c in ends) - min(c['loss'] for c in ends),
                             curves=[[[c['epoch'], round(c['loss'], 3)] for c in r['curve']] for r in recs]))
    return rows

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='runs/bench/yardstick', help='folder of the runs (checkpoints)')
    p.add_argument('--curves', default='bench/results/yardstick-mnist5k', help='folder of the models\' curves (kept)')
    p.add_argument('--every', type=int, default=10, help='epochs between two measurements of the test loss')
    p.add_argument('--tol', type=float, default=1., help='nats the loss may move between the middle and the end')
    p.add_argument('--max_epochs', type=int, default=640, help='a model that has not converged by then stops there')
    p.add_argument('--workers', type=int, default=2, help='processes, one torch thread each')
    p.add_argument('--smoke', action='store_true', help='one point, one seed, measured every epoch, 4 epochs at most')
    p.add_argument('--json', help='also write the table to this file')
    p.add_argument('--worker', help=argparse.SUPPRESS)       # 'i/n': this process trains every n-th model from i
    a = p.parse_args(argv)
    if a.smoke: a.every, a.max_epochs, a.workers = 1, 4, 1
    out, curves = Path(a.out).absolute(), Path(a.curves).absolute()
    for d in (out, curves): d.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1); tune_malloc()
    if a.worker:
        i, n = map(int, a.worker.split('/'))
        for b2, b1, s in jobs(a.smoke)[i::n]:
            t0 = time.monotonic()
            r = fit(curves, out, b2, b1, s, a.every, a.tol, a.max_epochs)
            print(f"  ({b2:g}, {b1:g}) seed {s}: stopped at epoch {r['stopped']} "
                  f"({'converged' if r['converged'] else 'NOT converged'}), {time.monotonic() - t0:.0f} s", flush=True)
        return
    print(f"{a.workers} processes x 1 torch thread, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    t0 = time.monotonic()
    args = [sys.executable, __file__, '--out', str(out), '--curves', str(curves), '--every', str(a.every),
            '--tol', str(a.tol), '--max_epochs', str(a.max_epochs)] + (['--smoke'] if a.smoke else [])
    procs = [subprocess.Popen(args + ['--worker', f'{i}/{a.workers}']) for i in range(a.workers)]
    if any(q.wait() for q in procs): sys.exit('yardstick: a worker failed')
    rows = summary(curves, a.smoke)
    print(f"\n{'(beta2, beta1)':>15s} {'epochs':>9s} {'moved, 3-pt':>12s} {'loss (seeds)':>16s} {'spread':>7s} "
          f"{'R(z2)':>11s} {'R(z1|z2)':>13s} {'PSNR':>11s}")
    for r in rows:
        pair = lambda k, f: '/'.join(format(v, f) for v in r[k])
        print(f"{str((r['beta2'], r['beta1'])):>15s} {pair('epochs', 'd'):>9s} {pair('moved_3', '.1f'):>12s} "
              f"{pair('loss', '.1f'):>16s} "
              f"{r['seed_spread']:7.2f} {pair('rate_z2', '.1f'):>11s} {pair('rate_z1', '.1f'):>13s} "
              f"{pair('psnr', '.1f'):>11s}" + ('' if all(r['converged']) else '  (not converged)'))
    secs = [s for r in rows for s in r['train_seconds']]
    print(f"training seconds per model: median {sorted(secs)[len(secs) // 2]:.0f}, max {max(secs):.0f}; "
          f"wall {time.monotonic() - t0:.0f} s; load average {os.getloadavg()[0]:.2f} at the end")
    if a.json: Path(a.json).write_text(json.dumps(dict(every=a.every, tol=a.tol, max_epochs=a.max_epochs, rows=rows),
                                                  indent=1))

if __name__ == '__main__': main()
