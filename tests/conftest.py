import os, re, signal, sys, subprocess, time
from pathlib import Path
import pandas as pd, pytest, torch

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
torch.set_num_threads(1)

# a tiny but real configuration: 8 steps per epoch on the bundled mnist5k digits
TINY = dict(dataset='mnist5k', epochs=3, batch_size=500, threads=1)

def run(cmd, timeout=600, env_extra=None, **kw):
    "Run a command with the test environment (plus `env_extra`); returns CompletedProcess (text)."
    env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}      # kernels must draw inline figures
    env.update(OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', **(env_extra or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)

@pytest.fixture(scope='session')
def tiny_done(tmp_path_factory):
    "An uninterrupted TINY run, shared by the tests that compare against it."
    from hit_nb.train import train
    out = tmp_path_factory.mktemp('ref') / 'run'
    m = train(progress=False, out_dir=out, **TINY)
    return out, m

def killed_hit_train(out, timeout=300) -> list:
    "Start hit_train on a TINY run in `out`, SIGKILL it once out/checkpoint.pt exists; returns the command to rerun."
    args = [str(BIN/'hit_train'), '--out_dir', str(out), '--epochs', '3', '--batch_size', '500', '--threads', '1',
            '--quiet']
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    t0 = time.time()
    while time.time() - t0 < timeout and not (Path(out)/'checkpoint.pt').exists(): time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (Path(out)/'DONE').exists(), 'the run finished before it could be killed'
    return args

from hit_nb.trainer import Callback

class AfterEpoch(Callback):
    "A test's hook after every epoch, once the parts of hit_nb have acted (the checkpoint committed): f(trainer)."
    order = 200
    def __init__(self, f): self.f = f
    def after_epoch(self, t): self.f(t)

def crash_after(epoch:int):
    "A part that raises KeyboardInterrupt, as Ctrl-C would, right after the checkpoint of `epoch` (1-based)."
    def f(t):
        if t.epoch + 1 == epoch: raise KeyboardInterrupt
    return AfterEpoch(f)

# sweeps of the same grid: the only columns that may differ between two of them
TIMING = ['run_dir', 'train_seconds']

def assert_same_results(a, b):
    "Every deterministic column equal, exactly (both tables read from results.csv)."
    a, b = (x.drop(columns=TIMING).reset_index(drop=True) for x in (a, b))
    for x in (a, b): x['reason'] = x['reason'].astype(object).where(x['reason'].notna(), None)   # all-empty: float or str dtype
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=False)   # values bit for bit; a NaN row elsewhere turns ints to floats

def first_step(run_dir):
    "The training step the (last) train.ipynb of a run started from, read off its progress bar: 0 for a fresh run, 8 after 1 epoch."
    return int(re.search(r'(\d+)/16 \[', (Path(run_dir)/'train.ipynb').read_text()).group(1))
