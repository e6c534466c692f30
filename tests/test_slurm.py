"""Sweeps on a real SLURM: Debian's slurmctld, slurmd and munge, started on this machine as a one-node cluster by
tests/local_slurm.sh (installed first where missing and we are root) and stopped by their PIDs afterwards, also when a
test fails. Without root and without SLURM the tests are skipped, except in CI, where they must run. Its folder is
$HIT_NB_SLURM_DIR where set (.ci/run sets it, to stop the daemons even if pytest itself is killed)."""
import os, subprocess, sys, time
from pathlib import Path
import pandas as pd, psutil, pytest
from hit_nb.classifiers import train_classifier
from hit_nb.clusters import slurm_cluster
from hit_nb.grids import grid_points
from hit_nb.sweep import run_sweep
from conftest import BIN, ROOT, assert_same_results, first_step, run

SCRIPT = ROOT/'tests'/'local_slurm.sh'
GRID = '0.31622777x0.31622777,3.16227766'        # two points, run side by side
TINY = dict(epochs=2, batch_size=500)           # 8 steps per epoch on mnist5k
CPU_JOB = dict(gpus_per_job=0, cores=1, memory='4GB')   # what the one-node test cluster can hold twice

def squeue(*args) -> list:
    "Ids of the jobs pending or running (squeue -h ARGS)."
    r = subprocess.run(['squeue', '-h', '-t', 'PENDING,RUNNING,CONFIGURING,COMPLETING', '-o', '%i', *args],
                       capture_output=True, text=True, timeout=60)
    return r.stdout.split()

def no_jobs_left(*args, timeout=30) -> bool:
    "True once no job is pending, running or completing (a cancelled job takes a few seconds to end)."
    t0 = time.monotonic()
    while squeue(*args) and time.monotonic() - t0 < timeout: time.sleep(0.5)
    return not squeue(*args)

def running(pid:int) -> bool:
    try: return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error: return False

@pytest.fixture(scope='module')
def slurm(tmp_path_factory):
    "A running one-node SLURM (SLURM_CONF set for this process and its children); every daemon gone afterwards."
    d = Path(os.environ['HIT_NB_SLURM_DIR']) if os.environ.get('HIT_NB_SLURM_DIR') else tmp_path_factory.mktemp('slurm')
    t0 = time.monotonic()
    r = subprocess.run(['bash', str(SCRIPT), 'start', str(d)], capture_output=True, text=True, timeout=600)
    if r.returncode == 3 and not os.environ.get('CI'): pytest.skip(r.stderr.strip())
    pids = [int((d/f'{n}.pid').read_text()) for n in ('munged', 'slurmctld', 'slurmd') if (d/f'{n}.pid').exists()]
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        print(f'SLURM up in {time.monotonic() - t0:.0f} s')
        old, os.environ['SLURM_CONF'] = os.environ.get('SLURM_CONF'), str(d/'slurm.conf')
        yield d
    finally:
        subprocess.run(['bash', str(SCRIPT), 'stop', str(d)], capture_output=True, text=True, timeout=300)
        if 'old' in locals():
            if old is None: os.environ.pop('SLURM_CONF', None)
            else: os.environ['SLURM_CONF'] = old
    assert not [p for p in pids if running(p)], 'SLURM daemons left running'

@pytest.fixture(scope='module')
def clf(tmp_path_factory):
    path = tmp_path_factory.mktemp('clf') / 'mnist5k.pt'
    train_classifier('mnist5k', out=path, epochs=1, progress=False)
    return path

def points(sweep_dir): return grid_points(GRID, 'mnist5k', 'ghvae', sweep_dir=sweep_dir, **TINY)

def csv(sweep_dir): return pd.read_csv(Path(sweep_dir)/'results.csv')

@pytest.fixture(scope='module')
def reference(tmp_path_factory, clf):
    "The two points on a LocalCluster: what every SLURM sweep of them must end with."
    d = tmp_path_factory.mktemp('local') / 'sweep'
    run_sweep(points(d), n_workers=2, classifier=clf, eval_params=dict(n_samples=500), progress=False)
    return csv(d)

def test_slurm_sweep_survives_scancel(slurm, reference, clf, tmp_path):
    """hit_sweep --slurm (slurm_cluster) with one job of two workers, named after the sweep: the job is scancelled while
    a run is mid-training; the sweep submits a new job, the run resumes from its checkpoint (step 8 of 16), the table
    equals the LocalCluster's value for value, and no job is left when the sweep ends."""
    d = tmp_path/'sweep'
    args = [str(BIN/'hit_sweep'), '--grid', GRID, '--sweep_dir', str(d), '--epochs', '2', '--batch_size', '500',
            '--n_samples', '500', '--classifier', str(clf), '--slurm', '--jobs', '1', '--gpus_per_job', '0',
            '--cores', '2', '--memory', '4GB']
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'})
    t0, victims = time.monotonic(), []
    while time.monotonic() - t0 < 300 and p.poll() is None and not victims:
        victims = [r for r in d.glob('mnist5k-*') if (r/'checkpoint.pt').exists() and not (r/'DONE').exists()]
        time.sleep(0.05)
    assert victims, 'no run caught mid-training'
    job, = squeue('-n', 'hit-sweep')                                   # the sweep's one job, by its name
    subprocess.run(['scancel', job], check=True, timeout=60)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    assert f'SLURM job(s) {job} ended (walltime, cancelled or lost): submitting 1 new one(s)' in err, err[-3000:]
    assert_same_results(csv(d), reference)
    for v in victims: assert first_step(v) == 8, v                    # resumed after epoch 1, not from the start
    logs = sorted(p.name for p in (d/'jobs').glob('*.out'))
    assert len(logs) == 2 and all(n.startswith('hit-sweep-') for n in logs), logs   # the cancelled job, its successor
    assert no_jobs_left('-n', 'hit-sweep')                             # closing the cluster cancelled the last one

def test_refused_jobs_fail_fast(slurm, clf, tmp_path):
    """slurm_cluster's defaults ask for a GPU this node does not have: the sweep fails within seconds with the
    scheduler's reason and the setting to change (it used to wait for ever, 0 workers, no message)."""
    code = ("import sys; from hit_nb.clusters import slurm_cluster; from hit_nb.grids import grid_points; "
            "from hit_nb.sweep import run_sweep\n"
            "c = slurm_cluster(jobs=2)\n"
            "try: run_sweep(grid_points('1x1', sweep_dir=sys.argv[1], epochs=1), scheduler=c, classifier=sys.argv[2], "
            "progress=False)\n"
            "except Exception as e: print(type(e).__name__, e)\n"
            "c.close()")
    t0 = time.monotonic()
    r = run([sys.executable, '-c', code, str(tmp_path/'a'), str(clf)], timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert time.monotonic() - t0 < 60
    assert 'ConfigError' in r.stdout and 'Invalid generic resource (gres) specification' in r.stdout, r.stdout
    assert 'Change gpus_per_job (0 for CPU jobs)' in r.stdout
    assert not (tmp_path/'a').exists()                                  # refused before anything was written
    # hit_sweep --slurm, and the same through make sweep CLUSTER=slurm
    opts = ['--epochs', '1', '--classifier', str(clf), '--gpus_per_job', '0', '--sweep_dir', str(tmp_path/'b')]
    r = run([str(BIN/'hit_sweep'), '--grid', '1x1', '--slurm', *opts, '--partition', 'gpu'], timeout=120,
            env_extra=dict(HIT_NB_DATA=str(tmp_path/'data')))
    assert r.returncode == 2, r.stderr[-2000:]
    assert 'invalid partition specified: gpu' in r.stderr and 'Change partition' in r.stderr, r.stderr[-2000:]
    r = run(['make', '-s', '-o', '.venv/.installed', f'BIN={BIN}', 'sweep', 'GRID=1x1', 'DATASET=mnist5k',
             'CLUSTER=slurm', 'SWEEP_OPTS=' + ' '.join([*opts, '--memory', '500GB'])], cwd=ROOT, timeout=120,
            env_extra=dict(HIT_NB_DATA=str(tmp_path/'data')))
    assert r.returncode != 0, r.stderr[-2000:]
    assert 'Requested node configuration is not available' in r.stderr, r.stderr[-2000:]
    assert 'Change cores, memory or gpus_per_job' in r.stderr
    assert not (tmp_path/'b').exists()
    assert not squeue()                                                 # nothing was submitted

def test_workers_that_never_join(slurm, clf, tmp_path):
    "Jobs that start but whose workers cannot (no such python on the nodes): NoWorkers in bounded time, with the log."
    d = tmp_path/'sweep'
    cluster = slurm_cluster(python='/nonexistent/python', log_directory=tmp_path/'jobs', **CPU_JOB)
    t0 = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match='without a Dask worker|no Dask worker') as e:
            run_sweep(points(d), scheduler=cluster, jobs=1, classifier=clf, start_timeout=60, progress=False)
    finally:
        cluster.close()
    assert time.monotonic() - t0 < 90
    assert '/nonexistent/python' in str(e.value), str(e.value)          # the job log's last lines say why
    assert no_jobs_left()
