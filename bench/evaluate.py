"""Wall time of evaluating one trained mnist5k run (issue: <= 60 s on a 2-core CPU), stage by stage.

    python bench/evaluate.py [--run RUN_DIR] [--classifier FILE] [--n_samples 10000] [--repeats 3]

Without --run it trains the default mnist5k run (30 epochs) into a temporary folder first; without --classifier it
trains the mnist5k domain classifier (its recipe) into a temporary folder. One torch thread; medians over repeats.
"""
import argparse, shutil, statistics, tempfile, time
from pathlib import Path
import torch

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--run'); ap.add_argument('--classifier'); ap.add_argument('--n_samples', type=int, default=10_000)
    ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from hit_nb.train import train
    from hit_nb.classifiers import train_classifier
    import hit_nb.evaluate as E
    tmp = Path(tempfile.mkdtemp())
    run = Path(a.run) if a.run else tmp / 'run'
    if not a.run: print('training the default mnist5k run ...', flush=True); train(progress=False, out_dir=run, threads=1)
    clf = Path(a.classifier) if a.classifier else tmp / 'clf.pt'
    if not a.classifier: print('training the mnist5k classifier ...', flush=True); train_classifier('mnist5k', out=clf, progress=False)
    # time each stage by wrapping the functions evaluate_run calls
    stages, orig = {}, {}
    for name in ('rd_metrics', 'posterior_table', 'mi_q', 'mi_q_z1', 'probe_metrics', 'classify_samples', 'inception_score'):
        f = getattr(E, name); orig[name] = f
        def timed(*args, _f=f, _n=name, **kw):
            t = time.perf_counter(); r = _f(*args, **kw); stages.setdefault(_n, []).append(time.perf_counter() - t); return r
        setattr(E, name, timed)
    totals = []
    for i in range(a.repeats):
        work = tmp / f'eval{i}'; shutil.copytree(run, work)
        t = time.perf_counter(); E.evaluate_run(work, classifier=clf, n_samples=a.n_samples, progress=False); totals.append(time.perf_counter() - t)
    print(f'\nevaluate_run on one mnist5k run, {a.n_samples} IS samples, 1 thread, median of {a.repeats}:')
    for n, ts in stages.items(): print(f'  {n:>18}: {statistics.median(ts):7.2f} s')
    print(f'  {"total":>18}: {statistics.median(totals):7.2f} s   (goal <= 60 s; min {min(totals):.2f}, max {max(totals):.2f})')
    shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
