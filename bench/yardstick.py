#!/usr/bin/env python
"""Benchmark (not a test): the converged yardstick of the rate atlas. Separate two-layer GHVAEs on the bundled digits
(mnist5k, the preset: batch 128, Adam at a constant 1e-3) at the 3 x 3 points (beta2, beta1) in {0.1, 1, 10}^2, two
seeds each, each trained until its test-set loss of Eq. 8,

    L = D + beta2 R(z2) + beta1 R(z1|z2)       (nats per test image, the reparameterisation noise seeded),

moves by at most `--tol` nats between the middle and the end of training: the loss is measured every `--every` epochs,
and a model stops at the first epoch E (a multiple of 2 x every) where the mean of the last three measurements up to E
differs from that up to E/2 by at most tol, or at `--max_epochs`. (One measurement jitters by a nat or more; the first
rule, on single measurements, stopped five models on noise: a rerun lets those go on.) The learning rate is constant,
so the model at epoch E is the same whatever the run's last epoch: a run stopped at E is the run trained for E epochs.

Both cores, one torch thread each: the 18 models are split between `--workers` processes. Every model keeps its curve in
<curves>/<beta2>-<beta1>-s<seed>.json as it goes (committed: bench/results/yardstick-mnist5k/); a rerun skips the
finished ones (and resumes a killed one from its last checkpoint in <out>, its curve so far kept). At the end a table
per point: the epochs each seed took, its loss and rates there, the seed spread (|L(seed 1) - L(seed 2)|, each at its
own stopping epoch), and how far the loss moved from E/2 to E (single measurements and 3-point means); --json writes it
all, with the curves.

    python bench/yardstick.py                          # hours on this 2-core machine: 14 min a model at 640 epochs
    python bench/yardstick.py --smoke                  # seconds: one point, one seed, 4 epochs
    python bench/yardstick.py --atlas RUN_DIR          # an atlas run against the yardstick: the goals of its issue

--atlas RUN_DIR sets a trained atlas (hit_train --atlas; or a copy of its checkpoint.pt taken mid-run) against the finished yardstick, point by point: its test loss
of Eq. 8 against the mean of the two seeds' (goal: at most eps = max(1 nat, the seed spread) above); whether
`target_betas` finds betas inside the box where the atlas reaches both of the separate model's rates (each within
max(10 %, 0.5 nats), seed 1's model) and its distortion there against that model's (goal: at most eps above); the
atlas's rates at (10, 10) (goal: at most 0.5 nats each); and wherever its R(z2) is under 0.1 nats, the RBF-SVM
accuracy on mu2 against Meyen's bound f^-1(I_q(y; z2)) (goal: at most 5 points above). The atlas's training time is
reported as a multiple of a yardstick model's (the issue's budget: 3).
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
ATLAS_STEP_COST = 1.15     # an atlas training step in plain steps (bench/atlas.py, one CPU thread)

def loss_at(m:dict, beta2:float, beta1:float) -> float:
    "Eq. 8 on the test set: D + beta2 R(z2) + beta1 R(z1|z2)."
    return m['distortion'] + beta2 * m['rate_z2'] + beta1 * m['rate_z1']

def mean_3(curve:list, e:int) -> float:
    "Mean test loss of the last three measurements up to epoch e (one measurement jitters by about a nat)."
    ls = [c['loss'] for c in sorted(curve, key=lambda c: c['epoch']) if c['epoch'] <= e][-3:]
    return sum(ls) / len(ls)

def moved_3(curve:list, e:int) -> float:
    "How far the loss moved from epoch e/2 to e, on means of three measurements."
    return abs(mean_3(curve, e) - mean_3(curve, e // 2))

def reopen(curves:Path, tol:float, max_epochs:int) -> list:
    "Models stopped by the older single-measurement rule that the 3-point rule calls unconverged: made to go on."
    out = []
    for path in sorted(curves.glob('*.json')):
        rec = json.loads(path.read_text())
        if 'stopped' in rec and rec['stopped'] < max_epochs and moved_3(rec['curve'], rec['stopped']) > tol:
            for k in ('stopped', 'converged'): rec.pop(k)
            path.write_text(json.dumps(rec, indent=1)); out.append(path.stem)
    return out

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
        self.rec.update(curve=curve)
        done = e % (2 * self.every) == 0 and moved_3(curve, e) <= self.tol
        if done or e >= self.max_epochs: self.rec.update(stopped=e, converged=done)
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

def jobs(smoke:bool, only=None) -> list:
    "(beta2, beta1, seed) of every model (those named in `only`, '<beta2>-<beta1>-s<seed>,...', if given)."
    if smoke: return [(1., 1., 1)]
    js = [(b2, b1, s) for s in SEEDS for b2 in BETAS for b1 in BETAS]
    return [j for j in js if only is None or f'{j[0]:g}-{j[1]:g}-s{j[2]}' in only.split(',')]

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
                smooth.append(moved_3(r['curve'], e))
            rows.append(dict(beta2=b2, beta1=b1, epochs=[r['stopped'] for r in recs],
                             converged=[r['converged'] for r in recs], moved=moved, moved_3=smooth,
                             loss=[c['loss'] for c in ends],
                             rate_z2=[c['rate_z2'] for c in ends], rate_z1=[c['rate_z1'] for c in ends],
                             psnr=[c['psnr'] for c in ends], train_seconds=[c['train_seconds'] for c in ends],
                             seed_spread=max(c['loss'] for c in ends) - min(c['loss'] for c in ends),
                             curves=[[[c['epoch'], round(c['loss'], 3)] for c in r['curve']] for r in recs]))
    return rows

def atlas_goals(atlas, rows:list, train_seconds:float, epochs:int, name:str, n_samples:int=2000) -> dict:
    "An atlas model (AtlasHVAE) against the yardstick's rows (summary): one dict per point and the goals met."
    from hit_nb.atlas import conditioned
    from hit_nb.atlas_eval import target_betas
    from hit_nb.data import load_dataset
    from hit_nb.evaluate import inception_classifier, evaluate_model
    data, out = load_dataset('mnist5k'), []
    clf = inception_classifier(None, 'mnist5k', None, 'cpu')
    for r in rows:
        p = [r['beta2'], r['beta1']]
        a = evaluate_model(conditioned(atlas, p), data, clf, n_samples, 5, 0, ("rbfsvm",))
        eps = max(1., r['seed_spread'])
        want = [r['rate_z2'][0], r['rate_z1'][0]]                                  # seed 1's converged model
        d_want = r['loss'][0] - r['beta2'] * want[0] - r['beta1'] * want[1]
        s = target_betas(atlas, data, want)
        with torch.no_grad(): d_at = rd_metrics(conditioned(atlas, s['betas']), data, 'test')['distortion']
        o = dict(beta2=r['beta2'], beta1=r['beta1'], eps=eps, loss_yardstick=sum(r['loss']) / len(r['loss']),
                 loss_atlas=loss_at(a, *p), rate_z2_atlas=a['rate_z2'], rate_z1_atlas=a['rate_z1'],
                 rate_z2_yardstick=want[0], rate_z1_yardstick=want[1], psnr_atlas=a['psnr'],
                 psnr_yardstick=r['psnr'][0], is_atlas=a['is'], reached=bool(s['reached']), betas_found=s['betas'],
                 rates_found=s['rates'], distortion_found=d_at, distortion_yardstick=d_want,
                 acc_rbfsvm_mu2=a['acc_rbfsvm_mu2'], acc_bound_z2=a['acc_bound_z2'])
        o['loss_ok'] = o['loss_atlas'] <= o['loss_yardstick'] + eps
        o['reach_ok'] = o['reached'] and o['distortion_found'] <= d_want + eps
        o['svm_ok'] = o['rate_z2_atlas'] >= 0.1 or o['acc_rbfsvm_mu2'] <= o['acc_bound_z2'] + 0.05
        out.append(o)
        print(f"  ({p[0]:g}, {p[1]:g}) done", flush=True)
    corner = next(o for o in out if (o['beta2'], o['beta1']) == (10., 10.))
    secs = sorted(s for r in rows for s in r['train_seconds'])
    eps_ = sorted(e for r in rows for e in r['epochs'])
    goals = dict(loss=sum(o['loss_ok'] for o in out), reach=sum(o['reach_ok'] for o in out),
                 corner_off=corner['rate_z2_atlas'] <= 0.5 and corner['rate_z1_atlas'] <= 0.5,
                 svm=all(o['svm_ok'] for o in out), points=len(out),
                 # epochs at the measured step costs (an atlas step 1.15x a plain one, bench/atlas.py): wall seconds
                 # measured on a shared machine say less; both given
                 compute_ratio=ATLAS_STEP_COST * epochs / eps_[len(eps_) // 2],
                 seconds_ratio=train_seconds / secs[len(secs) // 2])
    return dict(points=out, goals=goals, atlas=name, epochs=epochs, train_seconds=train_seconds)

def print_goals(g:dict):
    G = g['goals']
    print(f"\natlas {g['atlas']} ({g['epochs']} epochs: {G['compute_ratio']:.2f}x a yardstick model's training compute "
          f"at the measured step costs, {G['seconds_ratio']:.2f}x its measured seconds) against the yardstick:")
    print(f"{'(beta2, beta1)':>15s} {'loss atlas/yard (eps)':>24s} {'R(z2), R(z1|z2) atlas':>22s} {'yardstick':>13s} "
          f"{'reached at betas':>20s} {'D there/yard':>14s} {'SVM mu2/bound %':>16s}")
    for o in g['points']:
        print(f"{str((o['beta2'], o['beta1'])):>15s} {o['loss_atlas']:8.1f}/{o['loss_yardstick']:6.1f} "
              f"({o['eps']:.1f}){'' if o['loss_ok'] else ' x':2s}"
              f" {o['rate_z2_atlas']:9.1f}, {o['rate_z1_atlas']:6.1f}   {o['rate_z2_yardstick']:5.1f}, "
              f"{o['rate_z1_yardstick']:5.1f} "
              f"{('(%.3g, %.3g)' % tuple(o['betas_found'])) if o['reached'] else 'not reached':>20s} "
              f"{o['distortion_found']:6.1f}/{o['distortion_yardstick']:6.1f}{'' if o['reach_ok'] else ' x':2s} "
              f"{100 * o['acc_rbfsvm_mu2']:6.1f}/{100 * o['acc_bound_z2']:5.1f}{'' if o['svm_ok'] else ' x'}")
    G = g['goals']
    print(f"goals: loss within eps at {G['loss']}/{G['points']} points; rates reached at no worse distortion at "
          f"{G['reach']}/{G['points']}; (10, 10) switched off (<= 0.5 nats each): {G['corner_off']}; "
          f"mu2 no better than Meyen's bound + 5 points where R(z2) < 0.1: {G['svm']}; "
          f"compute {G['compute_ratio']:.2f}x (budget 3x)")

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
    p.add_argument('--atlas', help='an atlas run directory (or a copy of its checkpoint) to set against the yardstick')
    p.add_argument('--only', help="train only these models, e.g. '10-10-s2,0.1-10-s1' (the others may be training)")
    p.add_argument('--worker', help=argparse.SUPPRESS)       # 'i/n': this process trains every n-th model from i
    a = p.parse_args(argv)
    if a.smoke: a.every, a.max_epochs, a.workers = 1, 4, 1
    out, curves = Path(a.out).absolute(), Path(a.curves).absolute()
    for d in (out, curves): d.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1); tune_malloc()
    if not a.worker and not a.atlas and (opened := reopen(curves, a.tol, a.max_epochs)):
        print(f"going on with {', '.join(opened)}: stopped by the single-measurement rule, unconverged on 3-point means")
    if a.atlas:
        from hit_nb.runs import run_model
        ck = Path(a.atlas)/'checkpoint.pt' if Path(a.atlas).is_dir() else Path(a.atlas)   # a run, or a copy of a
        ck = torch.load(ck, weights_only=False, map_location='cpu')                       # checkpoint taken mid-run
        atlas = run_model(ck['config']); atlas.load_state_dict(ck['model']); atlas.eval()
        g = atlas_goals(atlas, summary(curves, False), ck['train_seconds'], ck['epoch'], a.atlas)
        print_goals(g)
        if a.json: Path(a.json).write_text(json.dumps(g, indent=1))
        return
    if a.worker:
        i, n = map(int, a.worker.split('/'))
        for b2, b1, s in jobs(a.smoke, a.only)[i::n]:
            t0 = time.monotonic()
            r = fit(curves, out, b2, b1, s, a.every, a.tol, a.max_epochs)
            print(f"  ({b2:g}, {b1:g}) seed {s}: stopped at epoch {r['stopped']} "
                  f"({'converged' if r['converged'] else 'NOT converged'}), {time.monotonic() - t0:.0f} s", flush=True)
        return
    print(f"{a.workers} processes x 1 torch thread, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    t0 = time.monotonic()
    args = [sys.executable, __file__, '--out', str(out), '--curves', str(curves), '--every', str(a.every),
            '--tol', str(a.tol), '--max_epochs', str(a.max_epochs)] + (['--smoke'] if a.smoke else []) \
        + (['--only', a.only] if a.only else [])
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
