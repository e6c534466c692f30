"Integration tests of training runs: resume, DONE, divergence, bad input, CLI exit codes, papermill."
import json, math, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
import hit_nb.trainer as T
from hit_nb.core import ConfigError, EXIT_BAD_INPUT
from hit_nb.config import make_config, TRAIN_PARAMS
from hit_nb.train import train, RunDiverged, EXIT_DIVERGED
from conftest import TINY, ROOT, BIN, run, killed_hit_train, crash_after

def load_ck(d): return torch.load(Path(d)/'checkpoint.pt', weights_only=True)

def assert_same_run(a, b):
    "Two run directories hold bit-identical models, optimisers and histories."
    ca, cb = load_ck(a), load_ck(b)
    assert ca['epoch'] == cb['epoch']
    for k in ca['model']: assert torch.equal(ca['model'][k], cb['model'][k]), k
    for (ka, sa), (kb, sb) in zip(ca['optimizer']['state'].items(), cb['optimizer']['state'].items()):
        for n in sa: assert torch.equal(sa[n], sb[n]), (ka, n)
    strip = lambda h: [{k: v for k, v in r.items()} for r in h]
    assert strip(ca['history']) == strip(cb['history'])
    ma, mb = (json.loads((Path(d)/'metrics.json').read_text()) for d in (a, b))
    for k in ('rate_z2', 'rate_z1', 'rate', 'distortion', 'psnr'): assert ma[k] == mb[k], k

def test_complete_run_directory(tiny_done):
    out, m = tiny_done
    assert {p.name for p in out.iterdir()} == {'.lock', 'DONE', 'checkpoint.pt', 'config.json', 'metrics.json',
                                              'samples.png', 'reconstructions.png', 'tb'}
    assert m['status'] == 'done' and [h['epoch'] for h in m['history']] == [1, 2, 3]
    for k in ('loss', 'distortion', 'rate_z2', 'rate_z1'): assert all(math.isfinite(h[k]) for h in m['history'])
    for k in ('rate_z2', 'rate_z1', 'rate', 'distortion', 'psnr', 'n_params', 'train_seconds'): assert k in m
    assert m['n_params'] == 122_713 and abs(m['rate'] - m['rate_z2'] - m['rate_z1']) < 1e-9
    cfg = json.loads((out/'config.json').read_text())
    assert (cfg['beta2'], cfg['beta1'], cfg['lr'], cfg['epochs']) == (1.0, 1.0, 1e-3, 3)

def test_done_run_is_not_retrained(tiny_done):
    out, m = tiny_done
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert train(progress=False, out_dir=out, **TINY) == m
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

def test_resume_after_interrupt_is_bit_identical(tiny_done, tmp_path):
    "A crash right after epoch 1's checkpoint, then a rerun, ends exactly where an uninterrupted run ends."
    out = tmp_path / 'run'
    with pytest.raises(KeyboardInterrupt): train(progress=False, out_dir=out, callbacks=[crash_after(1)], **TINY)
    assert load_ck(out)['epoch'] == 1 and not (out/'DONE').exists()
    assert json.loads((out/'metrics.json').read_text())['status'] == 'running'
    train(progress=False, out_dir=out, **TINY)
    assert_same_run(out, tiny_done[0])

def test_resume_after_sigkill_is_bit_identical(tiny_done, tmp_path):
    "SIGKILL the command-line trainer mid-run (after >= 1 checkpoint), rerun it: same result as uninterrupted."
    out = tmp_path / 'run'
    args = killed_hit_train(out)
    assert load_ck(out)['epoch'] in (1, 2)
    r = run(args)
    assert r.returncode == 0, r.stderr
    assert not list(out.glob('.*.tmp'))
    assert_same_run(out, tiny_done[0])

def nan_after(monkeypatch, steps):
    "Make the loss non-finite from the `steps`-th training step on."
    real, calls = T.model_loss, [0]
    def patched(*a, **k):
        calls[0] += 1
        ls = real(*a, **k)
        if calls[0] > steps: ls['loss'] = ls['loss'] * float('nan')
        return ls
    monkeypatch.setattr(T, 'model_loss', patched)

def test_divergence_is_recorded_and_keeps_last_finite_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / 'run'
    nan_after(monkeypatch, 8 + 3)     # epoch 1 = 8 steps; the loss goes NaN in epoch 2
    with pytest.raises(RunDiverged, match='epoch 2'): train(progress=False, out_dir=out, **TINY)
    m = json.loads((out/'metrics.json').read_text())
    assert m['status'] == 'diverged' and m['diverged_epoch'] == 2 and len(m['history']) == 1
    ck = load_ck(out)
    assert ck['epoch'] == 1 and all(torch.isfinite(v).all() for v in ck['model'].values())
    assert not (out/'DONE').exists()

def test_cli_exit_codes(tmp_path):
    code = ("import sys, hit_nb.trainer as T, hit_nb.train as H; real = T.model_loss; n = [0]\n"
            "def f(*a, **k):\n n[0] += 1; ls = real(*a, **k)\n"
            " if n[0] > 3: ls['loss'] = ls['loss'] * float('nan')\n return ls\n"
            f"T.model_loss = f\n"
            f"H.hit_train(out_dir={str(tmp_path/'div')!r}, epochs=2, batch_size=500, threads=1, quiet=True)")
    r = run([sys.executable, '-c', code])
    assert r.returncode == EXIT_DIVERGED == 3, r.stderr
    assert 'diverged in epoch 1' in r.stderr
    r = run([str(BIN/'hit_train'), '--beta1', '-0.5', '--out_dir', str(tmp_path/'bad')])
    assert r.returncode == EXIT_BAD_INPUT == 2 and 'beta1' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'bad').exists()

BAD = [(dict(beta2=0.), 'beta2'), (dict(beta2=-1.), 'beta2'), (dict(beta1=float('nan')), 'beta1'),
       (dict(beta1=float('inf')), 'beta1'), (dict(dataset='imagenet'), 'dataset'), (dict(model='vae'), 'model'),
       (dict(epochs=0), 'epochs'), (dict(epochs=-3), 'epochs'), (dict(betas=[1., -2., 1.]), 'betas[1]')]

@pytest.mark.parametrize('bad,name', BAD, ids=[f'{n}={list(b.values())[0]}' for b, n in BAD])
def test_bad_parameter_fails_before_writing(tmp_path, bad, name):
    out = tmp_path / 'run'
    with pytest.raises(ConfigError, match=name.replace('[', r'\[').replace(']', r'\]')):
        train(progress=False, out_dir=out, **{**TINY, **bad})
    assert not out.exists()

def test_missing_dataset_files_offline(tmp_path):
    out = tmp_path / 'run'
    with pytest.raises(FileNotFoundError, match='test_32x32.mat'):
        train(progress=False, dataset='svhn', root=tmp_path/'nodata', out_dir=out, epochs=1)
    assert not out.exists()

def test_unwritable_out_dir(tmp_path):
    (tmp_path/'afile').write_text('x')
    with pytest.raises(ConfigError, match='out_dir'): train(progress=False, out_dir=tmp_path/'afile'/'run', **TINY)
    assert (tmp_path/'afile').read_text() == 'x'

def test_corrupt_checkpoint_is_refused(tmp_path, tiny_done):
    out = tmp_path / 'run'; out.mkdir()
    (out/'config.json').write_text((tiny_done[0]/'config.json').read_text().replace(str(tiny_done[0]), str(out)))
    (out/'checkpoint.pt').write_bytes(b'not a checkpoint' * 10)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    with pytest.raises(ConfigError, match='corrupt'): train(progress=False, out_dir=out, **TINY)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before

def test_checkpoint_with_code_is_refused(tmp_path, tiny_done):
    "weights_only=True: a checkpoint that would run code on load is refused."
    out = tmp_path / 'run'; out.mkdir()
    ck = load_ck(tiny_done[0]); ck['extra'] = Path('/')      # an arbitrary Python object: not plain data
    torch.save(ck, out/'checkpoint.pt')
    with pytest.raises(ConfigError, match='corrupt or not a hit_nb checkpoint'):
        train(progress=False, out_dir=out, **TINY)

def test_foreign_checkpoint_is_refused(tmp_path, tiny_done):
    out = tmp_path / 'run'; out.mkdir()
    (out/'checkpoint.pt').write_bytes((tiny_done[0]/'checkpoint.pt').read_bytes())   # a run with beta2 = 1
    with pytest.raises(ConfigError, match='another configuration.*beta'):
        train(progress=False, out_dir=out, **{**TINY, 'beta2': 0.5})
    assert sorted(p.name for p in out.iterdir()) == ['checkpoint.pt']

def test_three_layer_run(tmp_path):
    m = train(progress=False, out_dir=tmp_path/'r3', **{**TINY, 'epochs': 1, 'betas': [0.5, 1., 2.]})
    assert (m['beta3'], m['beta2'], m['beta1']) == (0.5, 1., 2.)
    assert abs(m['rate'] - (m['rate_z3'] + m['rate_z2'] + m['rate_z1'])) < 1e-9
    assert set(m['history'][0]) >= {'rate_z3', 'rate_z2', 'rate_z1'}

def papermill(out_nb, *params):
    args = [str(BIN/'papermill'), str(ROOT/'nbs'/'train.ipynb'), str(out_nb)]
    for k, v in params: args += ['-p', k, str(v)]
    return run(args, cwd=out_nb.parent)

def test_papermill_run(tmp_path):
    "The parameterised notebook trains a model and reads as a report; the parameters tag is alive."
    out = tmp_path / 'run'
    r = papermill(tmp_path/'out.ipynb', ('epochs', 2), ('batch_size', 500), ('beta2', 0.3), ('out_dir', out))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['status'] == 'done' and m['beta2'] == 0.3 and len(m['history']) == 2   # injected parameters won
    nb = json.loads((tmp_path/'out.ipynb').read_text())
    outs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
    assert sum('image/png' in o.get('data', {}) for o in outs) >= 2                    # the rate curves and the images
    assert any('psnr' in ''.join(o.get('text', '')) for o in outs)

def test_papermill_bad_input(tmp_path):
    out = tmp_path / 'run'
    r = papermill(tmp_path/'out.ipynb', ('beta2', -1), ('out_dir', out))
    assert r.returncode != 0
    assert 'beta2=-1' in (tmp_path/'out.ipynb').read_text()
    assert not out.exists()

# on purpose: one thread is steady on a shared machine (make_config's None means torch's default)
NOTEBOOK_DEFAULTS = {'threads': 1}

def test_notebook_parameters_are_make_configs():
    "train.ipynb's parameters cell: make_config's names in its order, each with its comment as help, and its defaults."
    import inspect, papermill
    from fastcore.docments import docments
    ps = papermill.inspect_notebook(str(ROOT/'nbs'/'train.ipynb'))
    assert tuple(ps) == TRAIN_PARAMS
    docs, sig = docments(make_config), inspect.signature(make_config).parameters
    for k, p in ps.items():
        assert p['help'] == docs[k], (k, p['help'], docs[k])
        assert eval(p['default']) == NOTEBOOK_DEFAULTS.get(k, sig[k].default), (k, p['default'])
    assert all(sig[k].default != v for k, v in NOTEBOOK_DEFAULTS.items())   # the exceptions are real ones

def test_cli_help_lists_every_parameter():
    "hit_train --help: every parameter of make_config, with its comment."
    from fastcore.docments import docments
    r = run([str(BIN/'hit_train'), '--help'], env_extra={'COLUMNS': '400'})
    assert r.returncode == 0, r.stderr
    docs = docments(make_config)
    for k in TRAIN_PARAMS: assert (f'--{k}' in r.stdout or f'--no-{k}' in r.stdout) and docs[k] in r.stdout, k
    assert '--no-tensorboard' in r.stdout                                  # a flag that is on by default
    assert '--quiet' in r.stdout

def test_kernel_settings_are_recorded_and_part_of_the_identity(tiny_done, tmp_path):
    "config.json and metrics.json say which kernels trained a run; continuing it with the others is refused."
    out, m = tiny_done
    assert m['fast_kernels'] is False and json.loads((out/'config.json').read_text())['fast_kernels'] is False
    with pytest.raises(ConfigError, match='fast_kernels: False there vs True here'):
        train(progress=False, out_dir=out, fast_kernels=True, **TINY)
    # a run directory from before the setting existed counts as pinned: still answered, not retrained
    old = tmp_path/'old'; shutil.copytree(out, old)
    cfg = json.loads((old/'config.json').read_text()); del cfg['fast_kernels']
    (old/'config.json').write_text(json.dumps(cfg))
    assert train(progress=False, out_dir=old, **TINY)['status'] == 'done'
