#!/usr/bin/env python
"""Benchmark (not a test): member-steps per second of an ensemble (`hit_nb.ensemble.Ensemble.step`, K grid points as
one vmapped program) against the same K points stepped one model at a time (`hit_nb.trainer.ModelStep` in a loop).

The K members differ only in their betas, as the points of one grid do. Both sides take the same synthetic batch
(seeded uint8 images turned to floats, batch 256: speed does not depend on content), the same weights and the same
Adam; one "round" is one step of each of the K members. Rounds of the two sides alternate (the order flips every
round) so machine noise hits both; each side runs for a time budget per (shape, K) with a minimum number of rounds.
Reported per shape and K: median seconds per member-step of each side and the throughput ratio ensemble / loop
(> 1: the ensemble is faster).

Before timing, a float64 check confirms the two sides compute the same thing: two ensemble steps against two
single-run steps per member, weights equal to 1e-10.

    python bench/ensemble.py                      # CPU, one thread, K = 1, 2, 4, 8 (about 4 minutes)
    python bench/ensemble.py --quick              # shorter budgets (about a minute)
    python bench/ensemble.py --device cuda --ks 1 8 32 128
    python bench/ensemble.py --smoke              # seconds: the check and one tiny timing (a test runs this)
"""
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path
import torch
try: import hit_nb
except ImportError:                                      # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hit_nb.config import make_config
from hit_nb.ensemble import Ensemble
from hit_nb.trainer import ModelStep, start_run, tune_malloc

SHAPES = {'GHVAE-colour': ('ghvae', 'svhn'), 'LVAE-colour': ('lvae', 'svhn'), 'GHVAE-MNIST': ('ghvae', 'mnist')}
BATCH = 256

def states(model, dataset, k, device, dtype=torch.float32):
    "K fresh runs of one grid (same seed and settings, betas spread over the paper's range), as RunStates."
    out = Path(tempfile.mkdtemp())
    betas = torch.logspace(-1, 1, k).tolist()
    sts = [start_run(make_config(dataset=dataset, model=model, beta2=b, beta1=1 / b, device=device, out_dir=out/str(i)))
           for i, b in enumerate(betas)]
    if dtype != torch.float32:
        for st in sts: st.model.to(dtype); st.opt = torch.optim.Adam(st.model.parameters(), lr=st.cfg['lr'])
    return sts

def batch(dataset, device, dtype=torch.float32, seed=0, n=BATCH):
    shape = (1, 28, 28) if dataset == 'mnist' else (3, 32, 32)
    x = torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed)).to(dtype) / 255
    return (x.round() if dataset == 'mnist' else x).to(device)

def check(model, dataset, device, k=2, steps=2) -> float:
    "Max weight difference between ensemble members and their solo runs after `steps` float64 steps."
    xs = [batch(dataset, device, torch.float64, seed=i, n=16) for i in range(steps)]
    rng = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state(device) if torch.device(device).type == 'cuda' else None
    def reset():
        torch.set_rng_state(rng)
        if cuda is not None: torch.cuda.set_rng_state(cuda, device)
    solo = []
    for st in states(model, dataset, k, device, torch.float64):
        reset()
        step = ModelStep(st)
        for x in xs: step(x, torch.tensor(st.cfg['betas'], dtype=torch.float64, device=device))
        solo.append(st.model.state_dict())
    ens = Ensemble(states(model, dataset, k, device, torch.float64)); reset()
    for x in xs: ens.step(x)
    return max((ens.sync(i).model.state_dict()[n] - s[n]).abs().max().item() for i, s in enumerate(solo) for n in s)

def sync(device):
    if torch.device(device).type == 'cuda': torch.cuda.synchronize(device)

def measure(model, dataset, k, device, budget, min_rounds):
    "Median seconds per member-step of the loop and of the ensemble, alternating rounds; and peak memory (CUDA)."
    x = batch(dataset, device)
    loop, ens = states(model, dataset, k, device), Ensemble(states(model, dataset, k, device))
    steps = [ModelStep(st) for st in loop]
    def run_loop():
        for step in steps: step(x, step.betas)
    def run_ens(): ens.step(x)
    for f in (run_loop, run_ens, run_loop, run_ens): f()                 # warm-up
    if torch.device(device).type == 'cuda': torch.cuda.reset_peak_memory_stats(device)
    times, t_end, r = {'loop': [], 'ensemble': []}, time.monotonic() + budget, 0
    while r < min_rounds or time.monotonic() < t_end:
        order = [('loop', run_loop), ('ensemble', run_ens)][::1 if r % 2 == 0 else -1]
        for name, f in order:
            sync(device); t0 = time.perf_counter(); f(); sync(device)
            times[name].append((time.perf_counter() - t0) / k)
        r += 1
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if torch.device(device).type == 'cuda' else None
    return {n: statistics.median(v) for n, v in times.items()}, r, peak

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cpu')
    p.add_argument('--ks', type=int, nargs='+', default=[1, 2, 4, 8])
    p.add_argument('--shapes', nargs='+', default=list(SHAPES), choices=list(SHAPES))
    p.add_argument('--budget', type=float, default=10., help='seconds per (shape, K) and side')
    p.add_argument('--quick', action='store_true', help='budget 2 s')
    p.add_argument('--smoke', action='store_true', help='the float64 check and one tiny timing, in seconds')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--json', help='also write the numbers to this file')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads); tune_malloc()
    if a.smoke: a.shapes, a.ks, a.budget = ['GHVAE-MNIST'], [2], 0.
    elif a.quick: a.budget = 2.
    print(f"device {a.device}, {a.threads} torch thread(s), batch {BATCH}, load average "
          f"{os.getloadavg()[0]:.2f} at start", flush=True)
    rows = []
    for name in a.shapes:
        model, dataset = SHAPES[name]
        err = check(model, dataset, a.device)
        print(f"{name}: float64 check, ensemble member vs its solo run after 2 steps: max |dw| = {err:.1e}")
        if err > 1e-10: raise SystemExit(f"{name}: the ensemble does not compute the single runs' steps ({err:.1e})")
        for k in a.ks:
            t, rounds, peak = measure(model, dataset, k, a.device, a.budget, 2 if a.smoke else 5)
            ratio = t['loop'] / t['ensemble']
            rows.append(dict(shape=name, K=k, loop_s=t['loop'], ensemble_s=t['ensemble'], ratio=ratio, rounds=rounds,
                             peak_gib=peak, member_steps_per_s=1 / t['ensemble']))
            mem = f", peak {peak:.2f} GiB" if peak is not None else ''
            print(f"  K={k:4d}: loop {t['loop'] * 1e3:8.2f} ms, ensemble {t['ensemble'] * 1e3:8.2f} ms per member-step "
                  f"({1 / t['ensemble']:8.1f} member-steps/s); ensemble/loop throughput {ratio:5.2f}x "
                  f"[{rounds} rounds{mem}]", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows

if __name__ == '__main__': main()
