"Integration tests of β-grid sweeps: an uninterrupted sweep, the driver killed, a worker killed, failure isolation, timeouts, bad input."
import io, json, os, re, shutil, signal, subprocess, sys, threading, time
from pathlib import Path
import nbformat, pandas as pd, psutil, pytest, torch
from hit_nb.sweep import run_sweep
from hit_nb.grids import grid_points
from hit_nb.results import results_table
from hit_nb.run_dir import RunDir
from hit_nb.classifiers import train_classifier
from conftest import BIN, ROOT, TIMING, assert_same_results, first_step, run

def run_status(d): return RunDir(d).status()

TINY = dict(epochs=2, batch_size=500)          # 8 steps per epoch on mnist5k
EVAL = dict(n_samples=500)
METRICS = ['rate_z2', 'rate_z1', 'rate', 'distortion', 'psnr', 'is', 'is_std', 'is_diversity', 'is_sharpness', 'mi_z2', 'mi_z1',
           *[f'acc_{p}_{l}' for p in ('logreg', 'linsvm', 'rbfsvm', 'knn') for l in ('mu2', 'mu1')], 'acc_bound_z2', 'acc_bound_rate_z2',
           'label_entropy', 'classifier_accuracy', 'n_params', 'train_seconds']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}

@pytest.fixture(scope='module')
def clf(tmp_path_factory):
    path = tmp_path_factory.mktemp('clf') / 'mnist5k.pt'
    train_classifier('mnist5k', out=path, epochs=1, progress=False)
    return path

def points(sweep_dir, grid='tiny', **kw): return grid_points(grid, 'mnist5k', 'ghvae', sweep_dir=sweep_dir, **{**TINY, **kw})

def sweep(sweep_dir, clf, pts=None, **kw):
    return run_sweep(pts or points(sweep_dir), sweep_dir, n_workers=2, classifier=clf, eval_params=EVAL, progress=False, **kw)

def csv(sweep_dir): return pd.read_csv(Path(sweep_dir)/'results.csv')

def assert_clean(run_dir, killed=False):
    "No half-written file under a real name: every notebook and JSON file parses, the checkpoint loads; hidden debris only right after a kill."
    run_dir = Path(run_dir)
    if not killed: assert not list(run_dir.glob('.*.partial.ipynb')) and not list(run_dir.glob('.*.tmp'))
    for f in run_dir.iterdir():
        if f.suffix in ('.json', '.ipynb') and not f.name.startswith('.'): json.loads(f.read_text())
    if (run_dir/'checkpoint.pt').exists(): torch.load(run_dir/'checkpoint.pt', weights_only=True)

def wait_gone(procs, timeout=30):
    "Wait for processes to exit; kill and return the ones still alive after `timeout` s."
    gone, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try: p.kill()
        except psutil.Error: pass
    return alive

@pytest.fixture(scope='module')
def reference(tmp_path_factory, clf):
    "An uninterrupted 2 x 2 sweep: the results every interrupted sweep must end with."
    d = tmp_path_factory.mktemp('ref') / 'sweep'
    t0 = time.monotonic()
    df = sweep(d, clf)
    print(f'uninterrupted 2x2 sweep: {time.monotonic() - t0:.0f} s')
    return d, df

def test_uninterrupted_sweep(reference):
    d, df = reference
    assert df.status.tolist() == ['done'] * 4 and df.reason.isna().all()
    assert sorted(zip(df.beta2, df.beta1)) == [(0.31622777, 0.31622777), (0.31622777, 3.16227766), (3.16227766, 0.31622777), (3.16227766, 3.16227766)]
    for k in METRICS: assert k in df and df[k].notna().all(), k
    assert (df.epochs == 2).all() and (df.seed == 2).all() and (df.dataset == 'mnist5k').all()
    assert_same_results(csv(d), pd.read_csv(io.StringIO(df.to_csv(index=False))))   # results.csv is the returned table
    pd.testing.assert_frame_equal(results_table(d), df)                   # and is rebuilt from the run directories alone
    for r in df.run_dir:
        assert (d/r/'train.ipynb').exists() and (d/r/'evaluate.ipynb').exists() and not (d/r/'failure.json').exists()
        assert_clean(d/r)
    t1 = pd.read_csv(d/'table1.csv', index_col=0)
    assert t1.loc['μ2', 'RBF SVM'] == pytest.approx(100 * df.acc_rbfsvm_mu2.max(), abs=1e-9)
    assert (d/'table1.md').read_text().startswith('| latent |')
    # rate accounting sanity: a larger beta2 buys a smaller R(z2) at the same beta1
    by = df.set_index(['beta2', 'beta1'])
    assert by.loc[(3.16227766, 0.31622777), 'rate_z2'] < by.loc[(0.31622777, 0.31622777), 'rate_z2']

def test_rerun_restores_lost_records(reference, clf, tmp_path):
    "A kill after the evaluated metrics.json (or DONE) was written but before papermill renamed its notebook: the next sweep runs that notebook again (same numbers), clears the debris and skips the complete runs."
    d = tmp_path / 'sweep'
    shutil.copytree(reference[0], d)
    ev, tr, *rest = [d/r for r in reference[1].run_dir]
    (ev/'evaluate.ipynb').rename(ev/'.evaluate.partial.ipynb')            # what the CI-caught kill left: metrics 'done', no record
    (tr/'train.ipynb').rename(tr/'.train.partial.ipynb')
    assert run_status(ev)[0] == run_status(tr)[0] == 'done'
    kept = {r: (r/'evaluate.ipynb').stat().st_mtime_ns for r in rest}
    ck, metrics = (tr/'checkpoint.pt').read_bytes(), json.loads((tr/'metrics.json').read_text())
    df = sweep(d, clf)
    assert (df.status == 'done').all()
    assert_same_results(csv(d), csv(reference[0]))
    for r in (ev, tr, *rest): assert_clean(r); assert (r/'train.ipynb').exists() and (r/'evaluate.ipynb').exists()
    assert {r: (r/'evaluate.ipynb').stat().st_mtime_ns for r in rest} == kept          # complete runs were not touched
    assert (tr/'checkpoint.pt').read_bytes() == ck and json.loads((tr/'metrics.json').read_text()) == metrics   # not retrained
    assert (tr/'evaluate.ipynb').stat().st_mtime_ns < (tr/'train.ipynb').stat().st_mtime_ns  # only its train record was rewritten

def test_kill_driver_then_rerun(reference, clf, tmp_path):
    "SIGKILL the hit_sweep driver (its pid only) once >= 1 run is DONE and another is half-trained; its workers, papermills and kernels die with it; the same command finishes the grid with the same table."
    d = tmp_path / 'sweep'
    args = [str(BIN/'hit_sweep'), '--grid', 'tiny', '--sweep_dir', str(d), '--epochs', '2', '--batch_size', '500', '--n_samples', '500',
            '--workers', '2', '--threads', '1', '--classifier', str(clf), '--quiet']
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    procs = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 400 and p.poll() is None:
            done = list(d.glob('*/DONE'))
            half = [m for m in d.glob('*/metrics.json') if len(json.loads(m.read_text()).get('history') or []) == 1
                    and time.time() - m.stat().st_mtime < 0.15]           # just wrote epoch 1: a whole epoch still to go
            if done and half: break                                       # >= 1 run DONE and >= 1 run with 1 of its 2 epochs
            time.sleep(0.02)
        procs = psutil.Process(p.pid).children(recursive=True)           # workers, papermills, kernels
        p.send_signal(signal.SIGKILL); p.wait()
        assert not wait_gone(procs), 'processes of the killed driver outlived it'
        left = [q for q in psutil.process_iter(['cmdline']) if any(str(d) in a for a in (q.info['cmdline'] or []))]
        assert not wait_gone(left, 10), 'a process started for the sweep outlived the driver'
        status = [run_status(r)[0] for r in d.iterdir() if r.is_dir()]
        assert 1 <= status.count('done') + status.count('trained') and status.count('done') < 4, status
        partial = {r.name: 8 * torch.load(r/'checkpoint.pt', weights_only=True)['epoch'] for r in d.iterdir()
                   if (r/'checkpoint.pt').exists() and not (r/'DONE').exists()}
        assert partial, 'no half-trained run at the kill'
        print(f'driver killed with run states {sorted(status)}, partial runs at steps {partial}; {len(procs)} descendant processes')
    finally:
        if p.poll() is None: p.kill()
        wait_gone(procs, 0)
    for r in d.iterdir():
        if r.is_dir(): assert_clean(r, killed=True)
    t0 = time.monotonic()
    r = run(args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    print(f'rerun after the kill: {time.monotonic() - t0:.0f} s')
    assert_same_results(csv(d), csv(reference[0]))
    for name, step in partial.items(): assert first_step(d/name) == step, name      # the rerun resumed them from their checkpoints
    for r in d.iterdir():
        if r.is_dir(): assert_clean(r)                                    # the rerun removed the debris of the kill

def chaos_points(d): return points(d, [(0.31622777, 0.31622777), (3.16227766, 3.16227766)]) + points(d, '1x1', lr=1.)

@pytest.fixture(scope='module')
def chaos(reference, clf, tmp_path_factory):
    "Two points of the 2 x 2 grid plus one that diverges (lr = 1 (the largest allowed) gives a NaN loss in epoch 1 on mnist5k), with one worker SIGKILLed while its kernel trains a run."
    d = tmp_path_factory.mktemp('chaos') / 'sweep'
    pts = chaos_points(d)
    killed, stop = {}, threading.Event()
    def killer():
        me = psutil.Process()
        while not stop.is_set() and not killed:
            for proc in me.children(recursive=True):
                try: cmd, rd = proc.cmdline(), Path(proc.cwd())
                except psutil.Error: continue
                if any('ipykernel' in a for a in cmd) and rd.parent == d:           # a worker's kept kernel, working in a run directory
                    if (rd/'.train.partial.ipynb').exists() and (rd/'checkpoint.pt').exists() and not (rd/'DONE').exists() and 'b2_1-b1_1' not in rd.name:
                        worker = proc.parent()
                        killed.update(run=rd, epoch=torch.load(rd/'checkpoint.pt', weights_only=True)['epoch'], worker=worker.cmdline(),
                                      procs=[proc, *proc.children(recursive=True)])
                        worker.send_signal(signal.SIGKILL)
                        return
            time.sleep(0.05)
    th = threading.Thread(target=killer, daemon=True); th.start()
    try: df = sweep(d, clf, pts)
    finally: stop.set(); th.join()
    return d, df, killed

def test_kill_worker(chaos, reference):
    d, df, killed = chaos
    assert killed, 'no worker was killed: the runs finished too fast to catch one mid-training'
    assert any('multiprocessing' in a or 'spawn_main' in a for a in killed['worker'])        # it was a Dask worker process
    assert killed['epoch'] == 1
    assert not wait_gone(killed['procs'], 10), "the killed worker's kernel outlived it"
    grid, ref = csv(d), csv(reference[0])
    grid, ref = grid[grid.run_dir.isin(ref.run_dir)][ref.columns], ref[ref.run_dir.isin(grid.run_dir)]   # the grid rows; the diverged point adds a column
    assert len(grid) == 2
    assert_same_results(grid, ref)                          # the killed run resumed and ended identical
    assert_clean(killed['run'])
    assert first_step(killed['run']) == 8                                  # the retried task resumed from the epoch-1 checkpoint
    assert all(first_step(d/r) == 0 for r in grid.run_dir if d/r != killed['run'])

def test_failure_isolation(chaos, clf):
    d, df, _ = chaos
    bad = df[df.run_dir.str.contains('b2_1-b1_1')]
    assert len(bad) == 1 and bad.status.item() == 'diverged' and 'non-finite loss in epoch 1' in bad.reason.item()
    assert (df.status == 'done').sum() == 2                                # the others completed
    rd = d/bad.run_dir.item()
    f = json.loads((rd/'failure.json').read_text())
    assert f['status'] == 'diverged' and f['stage'] == 'train' and f['attempt'] == 1 and f['params']['lr'] == 1.
    assert (rd/'train.ipynb').exists() and 'RunDiverged' in (rd/'train.ipynb').read_text()   # the notebook records the error
    before = {p.name: p.stat().st_mtime_ns for p in rd.iterdir()}
    pts = chaos_points(d)
    # rerun without retry_failed: nothing runs (no cluster is even started), the failure is kept as it is
    t0 = time.monotonic()
    again = run_sweep(pts, d, classifier=clf, eval_params=EVAL, progress=False)
    assert time.monotonic() - t0 < 30
    assert {p.name: p.stat().st_mtime_ns for p in rd.iterdir() if p.name != 'results.csv'} == before
    assert again[again.run_dir == bad.run_dir.item()].status.item() == 'diverged'
    # with retry_failed it is tried again (and diverges again: training on the CPU is deterministic)
    again = sweep(d, clf, pts, retry_failed=True)
    f2 = json.loads((rd/'failure.json').read_text())
    assert f2['attempt'] == 2 and f2['status'] == 'diverged' and f2['time'] >= f['time']
    assert (rd/'train.ipynb').stat().st_mtime_ns > before['train.ipynb']
    assert (again.status == 'done').sum() == 2

def test_timeout(clf, tmp_path):
    "A run longer than the per-run timeout is killed (its kernel) and recorded as 'timeout', leaving no half file; the sweep goes on."
    d = tmp_path / 'sweep'
    pts = points(d, '1x1', epochs=500) + points(d, '0.5x0.5', lr=1.)    # about 10 minutes, and a run that diverges within seconds
    t0 = time.monotonic()
    df = sweep(d, clf, pts, timeout=25)
    wall = time.monotonic() - t0
    st = dict(zip(df.run_dir, zip(df.status, df.reason)))
    long_run, div_run = Path(pts[0]['out_dir']).name, Path(pts[1]['out_dir']).name
    assert st[long_run][0] == 'timeout' and 'timeout=25' in st[long_run][1]
    assert st[div_run][0] == 'diverged'                                   # the other point ran to its end meanwhile
    assert 25 <= wall < 25 + 60, wall
    rd = d/long_run
    assert_clean(rd)
    assert not (rd/'train.ipynb').exists() and not (rd/'DONE').exists()   # the half notebook was never under its real name
    assert json.loads((rd/'failure.json').read_text())['stage'] == 'train'
    left = [p for p in psutil.process_iter(['cmdline', 'cwd']) if p.info['cwd'] == str(rd) or any(str(rd) in a for a in (p.info['cmdline'] or []))]
    assert not wait_gone(left, 10), 'a process of the timed-out run survived'

def test_fresh_kernels(reference, clf, tmp_path):
    "fresh_kernels=True (each notebook in its own papermill process) gives the same numbers as the kept kernels of the reference sweep."
    d = tmp_path / 'sweep'
    df = sweep(d, clf, points(d, [(3.16227766, 0.31622777)]), fresh_kernels=True)
    ref = csv(reference[0])
    assert_same_results(csv(d), ref[ref.run_dir == df.run_dir.item()])
    assert (d/df.run_dir.item()/'evaluate.ipynb').exists()

def test_dask_failure_is_timed(clf, tmp_path):
    "A task Dask gives up on (its worker killed, allowed_failures=0) is recorded at stage 'dask', timed from its submission."
    nbs = tmp_path/'nbs'; nbs.mkdir()
    for name in ('train', 'evaluate'):                                   # the real parameters cells; a body that kills the worker
        nb = nbformat.read(ROOT/'nbs'/f'{name}.ipynb', as_version=4)
        nb.cells = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
        nb.cells.append(nbformat.v4.new_code_cell("import os, signal, time\ntime.sleep(1)\nos.kill(os.getppid(), signal.SIGKILL)"))
        nbformat.write(nb, nbs/f'{name}.ipynb')
    d = tmp_path/'sweep'
    df = run_sweep(points(d, '1x1'), d, n_workers=1, classifier=clf, eval_params=EVAL, progress=False, notebooks_dir=nbs,
                   allowed_failures=0)
    f = json.loads((d/df.run_dir.item()/'failure.json').read_text())
    assert df.status.item() == 'failed' and f['stage'] == 'dask' and 'KilledWorker' in f['reason'], f
    assert f['seconds'] >= 1, f                                           # not ~0: timed from the task's submission

def test_cli_bad_input(tmp_path):
    "A bad grid value fails before anything runs, naming the parameter; exit code 2."
    r = run([str(BIN/'hit_sweep'), '--grid', '0.1,-2x1', '--sweep_dir', str(tmp_path/'s'), '--quiet'])
    assert r.returncode == 2 and 'beta2=-2.0' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'s').exists()
    r = run([sys.executable, '-m', 'hit_nb.sweep', '--grid', 'nope', '--sweep_dir', str(tmp_path/'s'), '--quiet'])
    assert r.returncode == 2 and "grid='nope'" in r.stderr

def hit_sweep(sweep_dir, clf, *args):
    "The command line on the tiny grid of `points` (the reference's settings unless `args` change them)."
    return run([str(BIN/'hit_sweep'), '--grid', 'tiny', '--epochs', '2', '--batch_size', '500', '--sweep_dir',
                str(sweep_dir), '--classifier', str(clf), '--n_samples', '500', '--workers', '2', '--quiet', *args])

def test_rerun_with_other_settings(reference, clf, tmp_path):
    "A sweep folder answers only for the settings it was made with: other training settings are refused; other "
    "evaluation settings too, unless --reevaluate asks to evaluate the trained runs again."
    d = tmp_path/'sweep'; shutil.copytree(reference[0], d)
    configs = {p: p.read_text() for p in d.glob('*/config.json')}
    r = hit_sweep(d, clf, '--lr', '1e-4', '--batch_size', '64')        # was: exit 0, "4 runs, 4 done", lr 1e-3 kept
    assert r.returncode == 2 and 'were trained with other settings' in r.stderr, r.stderr
    assert '(batch_size: 500 there vs 64 here, lr: 0.001 there vs 0.0001 here)' in r.stderr, r.stderr
    assert {p: p.read_text() for p in d.glob('*/config.json')} == configs
    r = hit_sweep(d, clf, '--n_samples', '1000')                       # was: exit 0 with the 500-sample IS kept
    assert r.returncode == 2 and 'n_samples: 500 there vs 1000 here' in r.stderr and '--reevaluate' in r.stderr
    r = hit_sweep(d, clf)                                              # the same settings: nothing to do
    assert r.returncode == 0 and '4 done' in r.stdout, r.stderr
    assert_same_results(csv(d), csv(reference[0]))
    r = hit_sweep(d, clf, '--n_samples', '1000', '--reevaluate')
    assert r.returncode == 0, r.stderr
    df, ref = csv(d), csv(reference[0])
    assert (df.eval_n_samples == 1000).all() and (ref.eval_n_samples == 500).all()
    assert (df.lr == 1e-3).all() and (df.batch_size == 500).all() and (df.classifier == str(clf)).all()
    for c in ('rate_z2', 'rate_z1', 'psnr', 'train_seconds'): assert df[c].tolist() == ref[c].tolist(), c   # not retrained
    assert not df['is'].equals(ref['is'])                              # the IS of 1000 samples, not of 500

@pytest.mark.parametrize('args, message', [
    (['--classifier', 'typo.pt'], "classifier='typo.pt': no such file"),          # was: trained into typo.pt, exit 0
    (['--n_samples', '7'], 'n_samples=7'),                                        # was: the grid trained, then 4 failed
    (['--sweep_dir', 'a_file'], 'is a file'),
])
def test_cli_refuses_before_anything_runs(tmp_path, args, message):
    (tmp_path/'a_file').write_text('x')
    r = run([str(BIN/'hit_sweep'), '--grid', '1x1', '--epochs', '1', '--sweep_dir', 'sweep', '--quiet', *args],
            cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a_file']                # nothing written, nothing trained

@pytest.mark.parametrize('targets', ['2:5:7', '2'])
def test_malformed_targets(tmp_path, targets):
    r = run([str(BIN/'hit_target_sweep'), '--targets', targets, '--sweep_dir', str(tmp_path/'t')])
    assert r.returncode == 2 and f'targets={targets!r}' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path/'t').exists()

def close_to_reference(df, ref, rtol):
    "Every column of the ensemble sweep's table equal to the single runs' (`ref`): metrics within `rtol`, the rest exactly; returns each metric's largest relative difference."
    a, b = (x.drop(columns=TIMING).reset_index(drop=True) for x in (df, ref))
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    num = [c for c in METRICS if c in a and c not in TIMING] + [c for c in a if c.startswith('final_beta')]
    pd.testing.assert_frame_equal(a.drop(columns=num), b.drop(columns=num), check_dtype=False)
    assert not (a[num].isna() ^ b[num].isna()).any().any()
    rel = {c: float(((a[c] - b[c]).abs() / b[c].abs().clip(lower=1e-12)).fillna(0).max()) for c in num}
    tol = {c: 10 * rtol if c.startswith('mi_') else rtol for c in num}     # I_q: a log-mean-exp over the test set's posteriors
    assert all(rel[c] <= tol[c] for c in num), sorted(rel.items(), key=lambda kv: -kv[1])[:5]
    return rel

@pytest.fixture(scope='module')
def ensemble_sweep(tmp_path_factory, clf):
    "The tiny grid through hit_sweep --ensemble 4 (one vmapped training task of four members, then four evaluations), its driver SIGKILLed in the middle of the ensemble's second epoch and the same command run again."
    d = tmp_path_factory.mktemp('ens') / 'sweep'
    args = [str(BIN/'hit_sweep'), '--grid', 'tiny', '--sweep_dir', str(d), '--epochs', '2', '--batch_size', '500', '--n_samples', '500',
            '--workers', '2', '--classifier', str(clf), '--quiet', '--ensemble', '4']
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    procs = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 400 and p.poll() is None:
            ms = list(d.glob('*/metrics.json'))
            if len(ms) == 4 and all(len(json.loads(m.read_text()).get('history') or []) == 1 for m in ms): break
            time.sleep(0.02)
        procs = psutil.Process(p.pid).children(recursive=True)
        p.send_signal(signal.SIGKILL); p.wait()
        assert not wait_gone(procs), 'processes of the killed driver outlived it'
    finally:
        if p.poll() is None: p.kill()
        wait_gone(procs, 0)
    epochs = {r.name: torch.load(r/'checkpoint.pt', weights_only=True)['epoch'] for r in d.iterdir() if (r/'checkpoint.pt').exists()}
    assert len(epochs) == 4 and set(epochs.values()) == {1} and not list(d.glob('*/DONE')), epochs   # killed in epoch 2
    t0 = time.monotonic()
    r = run(args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    print(f'2x2 sweep as one ensemble of 4, rerun after the kill: {time.monotonic() - t0:.0f} s')
    return d, csv(d), epochs

def test_ensemble_sweep_matches_single_runs(ensemble_sweep, reference):
    "hit_sweep --ensemble 4, killed and rerun, resumes its members from their checkpoints and ends with the table of the single-run sweep, to float rounding (that a killed ensemble resumes bit for bit is tests/test_ensemble.py's); every member's directory is a single run's, with the ensemble's notebook as its train.ipynb."
    d, df, epochs = ensemble_sweep
    rel = close_to_reference(df, csv(reference[0]), 1e-3)
    print('relative differences from single runs:', {k: f'{v:.1e}' for k, v in sorted(rel.items(), key=lambda kv: -kv[1])})
    for name in epochs: assert first_step(d/name) == 8, name             # resumed from the checkpoint, not from scratch
    members = json.loads(next((d/'.ensembles').glob('*/members.json')).read_text())
    assert sorted(Path(m['out_dir']).name for m in members) == sorted(df.run_dir)
    for r in df.run_dir:
        assert_clean(d/r)
        assert 'ensemble of 4' in (d/r/'train.ipynb').read_text() and (d/r/'evaluate.ipynb').exists()
        assert sorted(f.name for f in (d/r).iterdir() if not f.name.startswith('.')) == \
               sorted(f.name for f in (reference[0]/r).iterdir() if not f.name.startswith('.'))

def hparams_sessions(logdir, n, timeout=120) -> dict:
    "run -> {'hparams': ..., 'metrics': {tag: value}} of the HParams view of TensorBoard itself serving `logdir`, once it lists `n` sessions."
    import urllib.request
    port = free_port()
    srv = subprocess.Popen([str(BIN/'tensorboard'), '--logdir', str(logdir), '--host', '127.0.0.1', '--port', str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    cols = [{'hparam': h, 'includeInResult': True} for h in ('beta2', 'beta1', 'run_kind')]
    body = json.dumps(dict(experimentName='', colParams=cols, startIndex=0, sliceSize=1000,
                           allowedStatuses=['STATUS_UNKNOWN', 'STATUS_SUCCESS', 'STATUS_FAILURE', 'STATUS_RUNNING'])).encode()
    try:
        t0, got = time.monotonic(), {}
        while time.monotonic() - t0 < timeout and len(got) < n:
            time.sleep(1)
            try:
                req = urllib.request.Request(f'http://127.0.0.1:{port}/data/plugin/hparams/session_groups', data=body,
                                             headers={'Content-Type': 'application/json'})
                groups = json.loads(urllib.request.urlopen(req, timeout=10).read())['sessionGroups']
            except (OSError, ValueError, KeyError): continue                  # not up yet, or still loading
            got = {g['name']: dict(hparams=g['hparams'], metrics={m['name']['tag']: m['value'] for m in g['metricValues']})
                   for g in groups}
        return got
    finally: srv.kill(); srv.wait()

def test_hparams_view_of_a_sweep(reference, tmp_path):
    "TensorBoard itself, serving a sweep folder, lists every run in its HParams view with its betas and final metrics (test-set rates and PSNR, IS, RBF-SVM on mu2, I_q, the bound); hit_tensorboard writes the same for a finished sweep whose logs are gone, as one from before hit_nb logged."
    d, df = reference
    old = tmp_path/'old'; shutil.copytree(d, old)
    for r in df.run_dir: shutil.rmtree(old/r/'tb')
    r = run([str(BIN/'hit_tensorboard'), str(old)])
    assert r.returncode == 0 and r.stdout.startswith('4 finished runs'), r.stderr
    for sweep_dir in (d, old):
        sessions = hparams_sessions(sweep_dir, len(df))
        assert sorted(sessions) == sorted(f'{r}/tb' for r in df.run_dir), sessions.keys()
        for _, row in df.iterrows():
            s = sessions[f'{row.run_dir}/tb']
            assert s['hparams'] == dict(beta2=row.beta2, beta1=row.beta1, run_kind='fixed betas')
            for k in ('rate_z2', 'rate_z1', 'rate', 'psnr'): assert s['metrics'][f'test/{k}'] == pytest.approx(row[k], rel=1e-6)
            for k in ('is', 'is_diversity', 'is_sharpness', 'mi_z2', 'acc_rbfsvm_mu2', 'acc_bound_z2'):
                assert s['metrics'][f'eval/{k}'] == pytest.approx(row[k], rel=1e-6, abs=1e-7), k
            if sweep_dir == d: assert {'train/loss', 'train/rate_z2'} <= set(s['metrics'])   # the curves' last values

def free_port() -> int:
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_cluster_started_by_hand(reference, clf, tmp_path):
    "A cluster as a job script starts one: `dask scheduler` and two `dask worker` processes named without numbers. worker_gpu gives them different GPU slots; a sweep on it (hit_sweep --scheduler) survives one worker's whole process tree SIGKILLed mid-training and ends with the reference's rows."
    from distributed import Client
    from hit_nb.sweep import worker_gpu
    port, d, log = free_port(), tmp_path/'sweep', open(tmp_path/'cluster.log', 'w')
    addr = f'tcp://127.0.0.1:{port}'
    start = lambda *a: subprocess.Popen([str(BIN/'dask'), *a], stdout=log, stderr=subprocess.STDOUT, env=ENV, cwd=tmp_path)
    sched = start('scheduler', '--host', '127.0.0.1', '--port', str(port), '--no-dashboard')
    workers = [start('worker', addr, '--nthreads', '1', '--name', name, '--no-dashboard') for name in ('alpha', 'beta')]
    try:
        with Client(addr, timeout=60) as c:
            c.wait_for_workers(2, timeout=60)
            gpus = c.run(worker_gpu, ['0', '1'], 1, str(tmp_path/'slots'))
            assert sorted(gpus.values()) == ['0', '1'], gpus                  # one GPU each, whatever their names
        args = [str(BIN/'hit_sweep'), '--grid', '0.31622777x0.31622777,3.16227766', '--sweep_dir', str(d), '--epochs', '2',
                '--batch_size', '500', '--n_samples', '500', '--classifier', str(clf), '--scheduler', addr, '--quiet']
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, text=True)
        t0, victim = time.monotonic(), None
        while time.monotonic() - t0 < 300 and p.poll() is None and victim is None:
            for w in workers:
                for k in psutil.Process(w.pid).children(recursive=True):
                    try: rd = Path(k.cwd())
                    except psutil.Error: continue
                    if rd.parent == d and (rd/'checkpoint.pt').exists() and not (rd/'DONE').exists():   # a kernel mid-training
                        victim = (w, [psutil.Process(w.pid), *psutil.Process(w.pid).children(recursive=True)], rd); break
                if victim: break
            time.sleep(0.05)
        assert victim, 'no worker caught mid-training'
        for q in victim[1]:
            try: q.kill()
            except psutil.Error: pass
        assert not wait_gone(victim[1], 10)
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        ref = csv(reference[0])
        assert_same_results(csv(d), ref[ref.run_dir.isin(csv(d).run_dir)])      # the killed run resumed on the other worker
        assert len(csv(d)) == 2 and first_step(victim[2]) == 8
    finally:
        for q in [*workers, sched]:
            if q.poll() is None: q.kill()
        wait_gone([psutil.Process(q.pid) for q in [*workers, sched] if psutil.pid_exists(q.pid)], 10)
        log.close()
