#!/usr/bin/env python
"""The prepared GPU check (a benchmark, not a test): one script, one call, at most ~8 minutes on one H100/H200.

It prints, in this order (each part has its own time budget, so a slow part shortens, never lengthens, the run):

1. smoke   on the device, under the pinned kernels (`hit_nb.train.pin_kernels`): a tiny `train` on the bundled
           digits killed after epoch 1 and resumed ends bit for bit as an uninterrupted one; an ensemble member
           equals its single run (float32: test-set rates to 1e-5 relative) and, in float64, to 1e-10; the I_q
           estimator (evaluation runs it on the run's device) gives the CPU's value to 1e-9.
2. single  the single-run step and epoch time at the paper's SVHN shape: synthetic 73,257 x 3 x 32 x 32 uint8 images
           held on the device, batch 256, the library's step (`ModelStep`, eager), pinned and with `fast_kernels`.
3. ensemble member-steps per second and peak memory at K = 1, 8, 32, 128 (and 256 when it fits), GHVAE at the SVHN
           shape, against the one-model-at-a-time loop (`bench/ensemble.py`).
4. project the wall time of the paper's 441-point grid x 500 epochs on this device, from the numbers above.
5. auto     the ensemble size a sweep's `ensemble='auto'` picks at the SVHN shape on this device (one run per GPU),
           from the measured base and per-member memory, and the peak memory of three steps at that size.

    python bench/gpu.py                 # on a CUDA machine (falls back to the CPU with a warning)
    python bench/gpu.py --smoke         # seconds, on the CPU: every part at toy size (a test runs this)
    python bench/gpu.py --json out.json # also write the numbers
"""
import argparse, json, math, os, statistics, sys, tempfile, time
from pathlib import Path
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ensemble as ens_bench                                     # bench/ensemble.py
from hit_nb.core import load_torch
from hit_nb.data import ImageData
from hit_nb.config import make_config
from hit_nb.ensemble import Ensemble, ensemble_capacity, ensemble_memory, train_ensemble
from hit_nb.mi import mi_q
from hit_nb.models import build_model
from types import SimpleNamespace
from hit_nb.train import train
from hit_nb.trainer import Callback, ModelStep, pin_kernels, prepare_model, start_run, tune_malloc

SVHN_TRAIN, BATCH, GRID, EPOCHS = 73_257, 256, 441, 500

def smoke(device, out:Path) -> dict:
    "Kill-and-resume exactness and ensemble-vs-single equality on `device`, with the pinned kernels."
    tiny = dict(dataset='mnist5k', epochs=2, batch_size=1000, device=device, threads=1)
    ref = train(progress=False, out_dir=out/'ref', **tiny)
    class Kill(Callback):                  # right after epoch 1's checkpoint, as Ctrl-C would
        order = 200
        def after_epoch(self, t):
            if t.epoch == 0: raise KeyboardInterrupt
    try: train(progress=False, out_dir=out/'killed', callbacks=[Kill()], **tiny)
    except KeyboardInterrupt: pass
    resumed = train(progress=False, out_dir=out/'killed', **tiny)
    a, b = load_torch(out/'ref'/'checkpoint.pt'), load_torch(out/'killed'/'checkpoint.pt')
    exact = all(torch.equal(a['model'][k], b['model'][k]) for k in a['model']) and a['history'] == b['history'] \
            and ref['rate_z2'] == resumed['rate_z2']
    pts = [dict(tiny, epochs=1, beta2=b2, out_dir=out/f'e{i}') for i, b2 in enumerate([0.3, 3.])]
    ms = train_ensemble(pts, progress=False)
    solo = [train(progress=False, **dict(p, out_dir=out/f's{i}')) for i, p in enumerate(pts)]
    rel = max(abs(m[k] - s[k]) / abs(s[k]) for m, s in zip(ms, solo) for k in ('rate_z2', 'rate_z1', 'distortion'))
    f64 = ens_bench.check('ghvae', 'svhn', device)
    g = torch.Generator().manual_seed(0)
    mu, std, y = torch.randn(3000, 32, generator=g), torch.rand(3000, 32, generator=g) + .1, torch.arange(3000) % 10
    mi_dev, mi_cpu = mi_q(mu, std, y, device=device), mi_q(mu, std, y, device='cpu')      # evaluation's I_q(y; z2)
    mi_rel = abs(mi_dev - mi_cpu) / abs(mi_cpu)
    print(f"smoke: kill + resume bit-identical: {exact}; ensemble member vs single run: test metrics {rel:.1e} "
          f"relative (float32), weights {f64:.1e} (float64, 2 steps); I_q on {device} vs CPU: {mi_rel:.1e}", flush=True)
    ok = exact and rel < 1e-5 and f64 < 1e-10 and mi_rel < 1e-9
    return dict(resume_exact=exact, member_rel=rel, member_f64=f64, mi_rel=mi_rel, ok=ok)

def synthetic(n_images, g) -> ImageData:
    "SVHN-shaped uint8 images (content does not change speed or memory)."
    return ImageData('svhn', torch.randint(0, 256, (n_images, 3, 32, 32), dtype=torch.uint8, generator=g),
                     torch.zeros(n_images, dtype=torch.long), torch.zeros(1, 3, 32, 32, dtype=torch.uint8),
                     torch.zeros(1, dtype=torch.long), 'gaussian')

def single(device, n_images, budget, fast) -> dict:
    "Median step time (and an epoch's time) of one GHVAE at the SVHN shape, batch 256, data on the device."
    pin_kernels(fast)
    g = torch.Generator().manual_seed(0)
    data = synthetic(n_images, g)
    torch.manual_seed(0)
    model = prepare_model(build_model('ghvae', 'svhn'), device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    step = ModelStep(SimpleNamespace(model=model, opt=opt, ctrl=None, cfg=dict(betas=[1., 1.]), dev=torch.device(device)))
    steps = math.ceil(n_images / BATCH)
    def epoch(n=None):
        b = data.batches('train', BATCH, shuffle=True, generator=g, device=device)
        if n is not None: b = (x for _, x in zip(range(n), b))
        ens_bench.sync(device); t0 = time.perf_counter()
        sums = sum(step(x, step.betas) for x, _ in b)                    # the trainer's sums, read once an epoch
        sums.tolist()
        ens_bench.sync(device); return time.perf_counter() - t0
    epoch(min(steps, 20))                                           # warm-up (and cuDNN autotuning when fast)
    times, t_end = [], time.monotonic() + budget
    while len(times) < 5 or (time.monotonic() < t_end and len(times) < 200):
        times.append(epoch(10) / 10)
    t_epoch = epoch()
    pin_kernels(False)
    return dict(step_s=statistics.median(times), epoch_s=t_epoch, steps_per_epoch=steps)

def auto(device, n_images, out:Path) -> dict:
    "The size `ensemble='auto'` picks at the SVHN shape (one ensemble on the device), and the peak memory it reaches."
    G, data = 2 ** 30, synthetic(n_images, torch.Generator().manual_seed(0))
    point = dict(dataset='svhn', model='ghvae', batch_size=BATCH, epochs=1, out_dir=str(out/'auto'))
    free, base, per = ensemble_memory(point, device, data=data)
    k = ensemble_capacity(free, base, per)
    torch.cuda.reset_peak_memory_stats(device); start = torch.cuda.memory_allocated(device)
    ens = Ensemble([start_run(make_config(**dict(point, device=device, out_dir=str(out/f'a{i}')))) for i in range(k)])
    for _, (x, _) in zip(range(3), data.batches('train', BATCH, device=device)): ens.step(x)
    torch.cuda.synchronize(device)
    r = dict(free_gib=free / G, base_gib=base / G, per_member_mib=per / 2 ** 20, K=k,
             predicted_gib=(base + k * per) / G, peak_gib=(torch.cuda.max_memory_allocated(device) - start) / G)
    print(f"auto: {r['free_gib']:.1f} GiB free, base {r['base_gib']:.2f} GiB, {r['per_member_mib']:.0f} MiB per member "
          f"-> K={k} (75% of free); 3 steps at K={k}: peak {r['peak_gib']:.1f} GiB (predicted {r['predicted_gib']:.1f})",
          flush=True)
    return r

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--smoke', action='store_true', help='every part at toy size on the CPU, in seconds')
    p.add_argument('--device', default=None, help='default: cuda when present, else cpu')
    p.add_argument('--ks', type=int, nargs='+', default=[1, 8, 32, 128, 256])
    p.add_argument('--json', help='also write the numbers to this file')
    a = p.parse_args(argv)
    dev = a.device or ('cuda' if torch.cuda.is_available() and not a.smoke else 'cpu')
    if dev == 'cpu' and not a.smoke: print('warning: no CUDA device; measuring the CPU', flush=True)
    torch.set_num_threads(1 if dev == 'cpu' else torch.get_num_threads()); tune_malloc()
    name = torch.cuda.get_device_name(dev) if dev.startswith('cuda') else 'CPU'
    print(f"device {dev} ({name}), torch {torch.__version__}", flush=True)
    t_start, res = time.monotonic(), {}
    with tempfile.TemporaryDirectory() as tmp:
        res['smoke'] = smoke(dev, Path(tmp))
    n_images, budget = (2_000, 0.5) if a.smoke else (SVHN_TRAIN, 20.)
    for fast in ((False, True) if dev.startswith('cuda') else (False,)):    # the fast kernels are CUDA's (TF32, cuDNN)
        r = res['single_fast' if fast else 'single'] = single(dev, n_images, budget, fast)
        print(f"single run, {'fast' if fast else 'pinned'} kernels: {r['step_s'] * 1e3:.2f} ms per step, "
              f"{r['epoch_s']:.2f} s per epoch of {r['steps_per_epoch']} steps", flush=True)
    ks = [1, 2] if a.smoke else a.ks
    rows = []
    for k in ks:
        try: t, rounds, peak = ens_bench.measure('ghvae', 'svhn', k, dev, 0. if a.smoke else 15., 2 if a.smoke else 5)
        except torch.cuda.OutOfMemoryError:
            print(f"ensemble K={k}: out of memory", flush=True); torch.cuda.empty_cache(); break
        rows.append(dict(K=k, loop_s=t['loop'], ensemble_s=t['ensemble'], peak_gib=peak,
                         member_steps_per_s=1 / t['ensemble'], vs_loop=t['loop'] / t['ensemble']))
        mem = f", peak {peak:.2f} GiB" if peak is not None else ''
        print(f"ensemble K={k:4d}: {1 / t['ensemble']:9.1f} member-steps/s ({t['loop'] / t['ensemble']:5.2f}x the "
              f"loop's {1 / t['loop']:.1f}){mem} [{rounds} rounds]", flush=True)
    res['ensemble'] = rows
    steps = GRID * EPOCHS * math.ceil(SVHN_TRAIN / BATCH)
    best = max(rows, key=lambda r: r['member_steps_per_s'])
    res['projection'] = dict(member_steps=steps, loop_hours=steps * res['single']['step_s'] / 3600,
                             ensemble_hours=steps / best['member_steps_per_s'] / 3600, best_K=best['K'])
    pr = res['projection']
    print(f"projection, 441 points x 500 epochs x {math.ceil(SVHN_TRAIN / BATCH)} steps = {steps:,} member-steps: "
          f"one at a time {pr['loop_hours']:.1f} h; ensembles of K={pr['best_K']}: {pr['ensemble_hours']:.1f} h "
          f"(training only; evaluation not included)", flush=True)
    if dev.startswith('cuda'):
        try:
            with tempfile.TemporaryDirectory() as tmp: res['auto'] = auto(dev, n_images, Path(tmp))
        except Exception as e: print(f"auto: failed: {type(e).__name__}: {e}", flush=True); res['auto'] = repr(e)
    else: print("auto: measured on CUDA only (the CPU default is one run per point)", flush=True)
    print(f"total {time.monotonic() - t_start:.0f} s; smoke {'passed' if res['smoke']['ok'] else 'FAILED'}")
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1))
    return 0 if res['smoke']['ok'] else 1

if __name__ == '__main__': sys.exit(main())
