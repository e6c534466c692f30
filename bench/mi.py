#!/usr/bin/env python
"""Benchmark (not a test): `hit_nb.mi.mi_q` against the reference's loop form of the I_q(y; z) estimator.

`ref_mi` below re-implements how the reference code evaluates the estimator: Python loops over chunks of 500
samples and over classes; per class, the parameters are `repeat`ed and the samples `repeat_interleave`d into
chunk x N_l x D tensors; torch.distributions.Normal objects are rebuilt per chunk; float32. `mi_q` is the GEMM form
in float64 with O(chunk x N) memory (nbs/11_mi.ipynb).

Everything runs on one CPU thread; times are medians of repeats (fewer where a single run is slow). Memory: the peak
RSS of one run above the RSS just before it (inputs already built), read as VmHWM after resetting the peak mark through
/proc/self/clear_refs (a resettable ru_maxrss; Linux), beside the analytic size of the largest temporary. Reference
sizes whose predicted time (quadratic from the largest measured size) exceeds --ref-limit seconds are not run but
extrapolated quadratically, and marked so.

    python bench/mi.py            # full run: N = 1000, 2000, 4000, 10000; D = 32, 512 (about 3-5 minutes)
    python bench/mi.py --quick    # small run (under 30 s)
"""
import argparse, math, os, statistics, sys, time

import torch

try: from hit_nb.mi import mi_q, _mi_from_samples, empirical_label_entropy
except ImportError:                                      # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from hit_nb.mi import mi_q, _mi_from_samples, empirical_label_entropy

N_CLASSES, REF_CHUNK, OUR_CHUNK = 10, 500, 1024

def make_posteriors(n, d, n_classes=N_CLASSES, seed=0):
    "Synthetic test-set posteriors like a trained VAE's: 8 active dimensions carry the class, the rest are prior-like."
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    y = y[torch.randperm(n, generator=g)]
    act = min(d, 8)
    centers = torch.randn(n_classes, act, generator=g, dtype=torch.float64)
    mu = 0.05 * torch.randn(n, d, generator=g, dtype=torch.float64)
    mu[:, :act] = centers[y] + torch.randn(n, act, generator=g, dtype=torch.float64)
    std = 0.9 + 0.1 * torch.rand(n, d, generator=g, dtype=torch.float64)
    std[:, :act] = 0.3 + 0.4 * torch.rand(n, act, generator=g, dtype=torch.float64)
    return mu, std, y

def ref_mi(mu, std, labels, n_classes=N_CLASSES, z=None, chunk=REF_CHUNK):
    "The reference's loop form (float32): loops over sample chunks and classes, repeated parameter tensors."
    mu, std = mu.float(), std.float()
    n = mu.shape[0]
    if z is None: z = torch.distributions.Normal(mu, std).sample()
    z = z.float()
    by_class = [(mu[labels == l], std[labels == l]) for l in range(n_classes)]   # per-class parameter lists
    n_l = torch.tensor([len(m) for m, _ in by_class], dtype=torch.float32)
    total = 0.
    for s in range(0, n, chunk):
        zb, yb = z[s:s + chunk], labels[s:s + chunk]
        b, alphas = zb.shape[0], []
        for mu_l, std_l in by_class:
            k = mu_l.shape[0]
            if k == 0: alphas.append(torch.full((b,), -math.inf)); continue
            q = torch.distributions.Normal(mu_l.repeat(b, 1), std_l.repeat(b, 1))   # (b*k, D), rebuilt per chunk
            logp = q.log_prob(zb.repeat_interleave(k, dim=0)).sum(-1).view(b, k)   # log q(z_j | x_k), k in class
            alphas.append(torch.logsumexp(logp, dim=1))
        alpha = torch.stack(alphas, dim=1)                                          # (b, M)
        own = alpha.gather(1, yb[:, None])[:, 0]
        total += float((own - torch.logsumexp(alpha, dim=1) - torch.log(n_l[yb] / n)).sum())
    return total / n

def peak_temp_bytes(method, n, d, n_classes=N_CLASSES):
    "Analytic size of the largest single temporary: (chunk, N) float64 for ours, (500 * N_l, D) float32 for the ref."
    if method == 'ours': return min(OUR_CHUNK, n) * n * 8
    return min(REF_CHUNK, n) * math.ceil(n / n_classes) * d * 4

try:
    import ctypes
    _libc = ctypes.CDLL('libc.so.6')
except OSError: _libc = None

def _status_kib(key):
    for line in open('/proc/self/status'):
        if line.startswith(key): return int(line.split()[1])

def reset_peak():
    "Return freed heap to the OS, reset the peak-RSS mark (Linux /proc/self/clear_refs); the current RSS in bytes."
    if _libc is not None: _libc.malloc_trim(0)
    try:
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
        return _status_kib('VmRSS:') * 1024
    except OSError: return None

def peak_since(rss0):
    "Peak RSS above `rss0` since `reset_peak` (bytes), or None where the peak mark cannot be reset."
    return None if rss0 is None else max(_status_kib('VmHWM:') * 1024 - rss0, 0)

def measure(method, n, d, repeats, budget):
    "Time one (method, N, D) on one thread: median times, the seed-0 value, and the peak extra RSS of one run."
    mu, std, y = make_posteriors(n, d)
    if method == 'ref': mu, std = mu.float(), std.float()
    f = (lambda r: mi_q(mu, std, y, n_classes=N_CLASSES, chunk=OUR_CHUNK, seed=r)) if method == 'ours' else \
        (lambda r: (torch.manual_seed(r), ref_mi(mu, std, y))[1])
    times, cpus, value, rss = [], [], None, None
    for r in range(repeats):
        rss0 = reset_peak()
        t, c = time.perf_counter(), time.process_time()
        v = f(r)
        times.append(time.perf_counter() - t); cpus.append(time.process_time() - c)
        if r == 0: rss, value = peak_since(rss0), v                # report the seed-0 value, whatever the repeats
        if sum(times) / len(times) * (r + 2) > budget: break   # slow sizes: fewer repeats
    return dict(wall=statistics.median(times), cpu=statistics.median(cpus), n=len(times), value=value, rss=rss)

def check_agreement(n, dims):
    "Both forms on the same samples: float32 reference vs float64 GEMM form."
    torch.set_num_threads(1)
    rows = []
    for d in dims:
        mu, std, y = make_posteriors(n, d, seed=1)
        z = mu + std * torch.randn(mu.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        a, b = _mi_from_samples(z, mu, std, y, N_CLASSES), ref_mi(mu, std, y, z=z)
        rows.append((d, a, b))
        print(f"  N={n:>5} D={d:>3}: ours(float64) = {a:.7f}  reference-form(float32) = {b:.7f}  "
              f"|diff| = {abs(a - b):.1e}"
              f"  (H_emp = {empirical_label_entropy(y):.4f})")
    return rows

def mib(x): return f"{'n/a':>8}" if x is None else f"{x / 2**20:8.1f}"

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='small run (under 30 s)')
    p.add_argument('--sizes', type=int, nargs='+',
                   help='N values (default: 1000 2000 4000 10000; quick: 500 1000 2000)')
    p.add_argument('--dims', type=int, nargs='+', help='D values (default: 32 512; quick: 32 256)')
    p.add_argument('--repeats', type=int, default=3, help='repeats per timing (fewer where one run is slow)')
    p.add_argument('--ref-limit', type=float,
                   help='skip reference runs predicted slower than this, seconds (default 60; quick 4)')
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = a.sizes or ([500, 1000, 2000] if a.quick else [1000, 2000, 4000, 10000])
    dims = a.dims or ([32, 256] if a.quick else [32, 512])
    ref_limit = a.ref_limit if a.ref_limit is not None else (4. if a.quick else 60.)
    budget = 6. if a.quick else 25.
    t_start = time.perf_counter()
    print(f"I_q(y;z) estimator benchmark: torch {torch.__version__}, 1 CPU thread, {N_CLASSES} classes, "
          f"ours chunk {OUR_CHUNK} float64, reference-form chunk {REF_CHUNK} float32; "
          f"times are medians of up to {a.repeats} repeats")
    print("Agreement on the same samples (small N):")
    agree = check_agreement(300 if a.quick else 500, dims)
    hdr = (f"{'D':>4} {'N':>6} | {'ours s':>7} {'ref s':>10} {'speed-up':>8} | "
           f"{'ours cpu s':>10} {'ref cpu s':>10} {'speed-up':>8} | {'ours peak MiB':>13} {'ref peak MiB':>12} | "
           f"{'ours max temp':>13} {'ref max temp':>12} | {'I ours':>6} {'I ref':>6}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    notes = []
    for d in dims:
        last = None                                           # (N, seconds) of the largest reference size measured
        for n in sizes:
            o = measure('ours', n, d, a.repeats, budget)
            pred = last[1] * (n / last[0]) ** 2 if last else 0.
            if pred <= ref_limit:
                r = measure('ref', n, d, a.repeats, budget)
                tr, cr, rss_r, i_r = r['wall'], r['cpu'], mib(r['rss']), f"{r['value']:6.3f}"
                mark = '' if r['n'] > 1 else '¹'
                ref_s, ref_c = f"{tr:.3f}{mark}", f"{cr:.3f}{mark}"
                if mark: notes.append(mark)
                last = (n, tr, cr)
            else:
                tr, cr = pred, last[2] * (n / last[0]) ** 2
                ref_s, ref_c, rss_r, i_r = f"~{tr:.1f}*", f"~{cr:.1f}*", f"{'-':>8}", f"{'-':>6}"
                notes.append('*')
            print(f"{d:>4} {n:>6} | {o['wall']:7.3f} {ref_s:>10} {tr / o['wall']:7.1f}x | {o['cpu']:10.3f} {ref_c:>10} "
                  f"{cr / o['cpu']:7.1f}x | {mib(o['rss']):>13} {rss_r:>12} | "
                  f"{mib(peak_temp_bytes('ours', n, d)):>13} {mib(peak_temp_bytes('ref', n, d)):>12} | "
                  f"{o['value']:6.3f} {i_r:>6}")
    print("-" * len(hdr))
    if '*' in notes:
        print(f"* reference not run (predicted > {ref_limit:.0f} s): time EXTRAPOLATED quadratically from the largest "
              "N measured at that D; the speed-up in that row uses the extrapolated time.")
    if '¹' in notes: print("¹ one run only (more repeats would exceed the per-size time budget).")
    print("s = wall-clock seconds; cpu s = process CPU seconds (user+sys), steadier on a shared machine; medians.")
    print("peak MiB = peak RSS of one run above the RSS before it (VmHWM after a clear_refs reset; inputs already "
          "built).\nmax temp = largest single tensor (MiB), analytic: ours min(1024,N) x N float64; reference "
          "500 x N_l x D float32 (Normal.log_prob and repeat make several of these at once).")
    print("I ours / I ref: seed-0 estimates from independent draws (the two forms draw differently), "
          "not the agreement check.")
    worst = max(abs(x - y) for _, x, y in agree)
    print(f"agreement: max |ours - reference form| on identical samples = {worst:.1e} "
          f"({'OK' if worst < 1e-4 else 'LARGER THAN 1e-4'}); total wall time {time.perf_counter() - t_start:.0f} s")

if __name__ == '__main__': main()
