"""Hostile input to a training run: every case ends in one clear error (exit 2 from hit_train, nothing written) or in a
result that belongs to the configuration that asked for it. Each test here failed on main before these checks."""
import json, os, resource, shutil, stat, subprocess, sys, threading, time
from pathlib import Path
import pytest, torch
from hit_nb.core import ConfigError, save_torch
from hit_nb.run_dir import RunDir
from hit_nb.train import train
from conftest import TINY, ROOT, BIN, run

def hit_train(out, *args, **kw):
    "The command-line trainer on `out` with TINY's settings and `args`; CompletedProcess."
    return run([str(BIN/'hit_train'), '--out_dir', str(out), '--epochs', '1', '--batch_size', '500', '--threads', '1',
                '--quiet', *args], **kw)

def assert_refused(r, *names):
    "Exit 2, one 'hit_train: error:' line naming every one of `names`, no traceback."
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith('hit_train: error:') and 'Traceback' not in r.stderr, r.stderr
    for n in names: assert n in lines[0], (n, lines[0])

# ---- wrong results with exit 0 (before) ----------------------------------------------------------------------------

@pytest.mark.parametrize('args, names', [
    (['--beta2', '1e30'], ['beta2=1e+30', '1e-06, 1e+06']),          # trained "done" with a loss of 2e30
    (['--beta1', '1e39'], ['beta1=1e+39']),                          # infinite in float32: a false divergence
    (['--lr', '10'], ['lr=10.0']),
    (['--target_rate_z2', '1e9'], ['target_rate_z2=1000000000.0']),
])
def test_numbers_beyond_float32_are_refused(tmp_path, args, names):
    r = hit_train(tmp_path/'run', *args)
    assert_refused(r, *names)
    assert not (tmp_path/'run').exists()

def test_two_configurations_on_one_out_dir(tiny_done, tmp_path):
    "A run that waited for the lock while another configuration finished there is refused, not handed its metrics."
    out = tmp_path/'run'; out.mkdir()
    got = {}
    def second():                                                      # beta2 = 3 waits for the lock ...
        try: got['metrics'] = train(progress=False, out_dir=out, beta2=3., **TINY)
        except ConfigError as e: got['error'] = str(e)
    with RunDir(out).lock():
        t = threading.Thread(target=second); t.start()
        time.sleep(1.5)                                                # ... past every check made before the lock
        assert t.is_alive()
        for f in tiny_done[0].iterdir():                               # ... while a beta2 = 1 run finishes in out
            if f.is_file() and f.name != '.lock': shutil.copy2(f, out/f.name)
    t.join(120)
    assert 'metrics' not in got, 'the beta2 = 3 run returned the beta2 = 1 run as its own'
    assert 'another configuration (betas: [1.0, 1.0] there vs [3.0, 1.0] here)' in got['error'], got
    assert json.loads((out/'config.json').read_text())['betas'] == [1.0, 1.0]     # the finished run is untouched

# ---- errors that must be clear -------------------------------------------------------------------------------------

@pytest.mark.parametrize('args, names', [
    (['--device', 'mps'], ["device='mps'"]), (['--device', 'meta'], ["device='meta'"]),
    (['--threads', '100000'], ['threads=100000']),                   # segfaulted
    (['--seed', '-1'], ['seed=-1']), (['--seed', str(2**64)], [f'seed={2**64}']),
    (['--betas', '[0.5, 1,'], ['betas=', 'not a JSON list']), (['--target_rates', '[1; 2]'], ['target_rates=']),
    (['--batch_size', '100000'], ['batch_size=100000', '4000 training images']),   # one step per epoch, silently
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, args, names):
    r = hit_train(tmp_path/'run', *[a for a in args])
    assert_refused(r, *names)
    assert not (tmp_path/'run').exists()

def copy_run(tiny_done, tmp_path):
    out = tmp_path/'run'
    shutil.copytree(tiny_done[0], out)
    return out

def test_done_run_without_metrics(tiny_done, tmp_path):
    out = copy_run(tiny_done, tmp_path)
    (out/'metrics.json').unlink()
    r = hit_train(out, '--epochs', '3')
    assert_refused(r, f"{out/'metrics.json'} is missing although the run is marked DONE", f"delete {out/'DONE'}")
    (out/'DONE').unlink()                                                # the fix the message gives works
    r = hit_train(out, '--epochs', '3')
    assert r.returncode == 0, r.stderr
    assert json.loads((out/'metrics.json').read_text())['psnr'] == tiny_done[1]['psnr']

@pytest.mark.parametrize('name', ['metrics.json', 'config.json'])
def test_truncated_json_is_named(tiny_done, tmp_path, name):
    out = copy_run(tiny_done, tmp_path)
    text = (out/name).read_text(); (out/name).write_text(text[:len(text) // 2])
    assert_refused(hit_train(out, '--epochs', '3'), f'{out/name} is not valid JSON')

def test_checkpoint_without_weights(tiny_done, tmp_path):
    "A checkpoint of the right configuration whose weights are missing is refused, naming it and the fix."
    out = copy_run(tiny_done, tmp_path)
    (out/'DONE').unlink()
    ck = torch.load(out/'checkpoint.pt', weights_only=True)
    ck['model'] = {k: v for k, v in list(ck['model'].items())[2:]}
    save_torch(out/'checkpoint.pt', ck)
    assert_refused(hit_train(out, '--epochs', '3'), str(out/'checkpoint.pt'), "does not hold this model's weights",
                   'delete it')
    del ck['optimizer']
    save_torch(out/'checkpoint.pt', ck)
    assert_refused(hit_train(out, '--epochs', '3'), 'is incomplete (no optimizer)')

def test_yaml_text_is_named(tmp_path):
    "papermill -y reads 1e-1 as text: the notebook refuses it and says it was text."
    out = tmp_path/'run'
    r = run([sys.executable, '-m', 'papermill', str(ROOT/'nbs'/'train.ipynb'), str(tmp_path/'o.ipynb'), '-y',
             f'beta2: 1e-1\nepochs: 1\nout_dir: {out}', '--cwd', str(ROOT/'nbs')])
    assert r.returncode != 0 and "beta2='1e-1'" in r.stderr and "the text '1e-1'" in r.stderr, r.stderr[-2000:]
    assert not out.exists()

def test_full_disk(tiny_done, tmp_path):
    "No room for the checkpoint: one clear line (exit 1), no debris, the run resumes once there is room."
    out = tmp_path/'run'
    def small_files(): resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))   # < checkpoint
    r = hit_train(out, '--epochs', '3', preexec_fn=small_files)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 1 and len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert lines[0].startswith(f"hit_train: error: no room to write {out/'checkpoint.pt'}"), lines
    assert 'free disk space' in lines[0]
    assert not list(out.glob('.*.tmp')) and not (out/'checkpoint.pt').exists()
    r = hit_train(out, '--epochs', '3')                                  # room again: the run goes on and finishes
    assert r.returncode == 0, r.stderr
    assert json.loads((out/'metrics.json').read_text())['psnr'] == tiny_done[1]['psnr']

@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o002, 0o664)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    "What a run writes is readable as the user's umask says (it was owner-only, 0600, whatever the umask)."
    out = tmp_path/'run'
    r = hit_train(out, preexec_fn=lambda: os.umask(umask))
    assert r.returncode == 0, r.stderr
    modes = {str(f.relative_to(out)): stat.S_IMODE(f.stat().st_mode) for f in out.rglob('*')
             if f.is_file() and f.name != '.lock'}
    tb = {k for k in modes if k.startswith('tb/')}                       # the TensorBoard log: run log and summary
    assert set(modes) - tb == {'DONE', 'checkpoint.pt', 'config.json', 'metrics.json', 'samples.png',
                               'reconstructions.png'} and len(tb) == 2, modes
    assert set(modes.values()) == {mode}, modes
