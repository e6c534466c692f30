"Rate targeting in training: exact resume with the controller, reaching a target, unreachable targets, bad input."
import json, warnings
from pathlib import Path
import pytest, torch
from hit_nb.core import ConfigError
from hit_nb.train import train
from conftest import TINY, ROOT, BIN, run, crash_after

TARGETS = dict(target_rate_z2=3., target_rate_z1=10.)

def load_ck(d): return torch.load(Path(d)/'checkpoint.pt', weights_only=True)

def test_resume_with_controller_is_bit_identical(tmp_path):
    ref, out = tmp_path/'ref', tmp_path/'run'
    train(progress=False, out_dir=ref, **TINY, **TARGETS)
    with pytest.raises(KeyboardInterrupt): train(progress=False, out_dir=out, callbacks=[crash_after(1)], **TINY, **TARGETS)
    train(progress=False, out_dir=out, **TINY, **TARGETS)
    a, b = load_ck(ref), load_ck(out)
    for k in a['model']: assert torch.equal(a['model'][k], b['model'][k]), k
    for k in ('log_betas', 'avg'): assert torch.equal(a['controller'][k], b['controller'][k]), k
    assert a['controller']['steps'] == b['controller']['steps'] == 3 * 8
    assert a['history'] == b['history']
    assert [h['beta2'] for h in a['history']] != [1.] * 3                   # the multiplier did move

def test_reaches_targets_on_a_small_case(tmp_path):
    "Both layers land within max(10 %, 0.5 nat) of their targets on the test set, with the preset's epochs."
    m = train(progress=False, out_dir=tmp_path/'run', dataset='mnist5k', threads=1, target_rate_z2=5.,
              target_rate_z1=15.)
    assert m['targets_missed'] == [] and m['epochs'] == 30
    for k, t in (('rate_z2', 5.), ('rate_z1', 15.)):
        assert abs(m[k] - t) <= max(0.1 * t, 0.5), (k, m[k])
        assert m[f'target_{k}'] == t
    assert m['final_beta2'] != 1. and m['final_beta1'] != 1.
    assert json.loads((tmp_path/'run'/'config.json').read_text())['targets'] == [5., 15.]

def test_unreachable_target_is_reported(tmp_path):
    with pytest.warns(UserWarning, match='rate_z2: target 500 nats not reached'):
        m = train(progress=False, out_dir=tmp_path/'run', **{**TINY, 'epochs': 2}, target_rate_z2=500.)
    assert m['targets_missed'] == ['rate_z2'] and m['rate_z2'] < 500 and 'target_rate_z1' not in m

@pytest.mark.parametrize('bad,name', [(dict(target_rate_z2=-2.), 'target_rate_z2'),
                                      (dict(target_rate_z1=float('nan')), 'target_rate_z1'),
                                      (dict(target_rate_z2=5., beta2=0.5), 'both set'),
                                      (dict(target_rate_z1=0.), 'target_rate_z1')])
def test_bad_targets_fail_before_writing(tmp_path, bad, name):
    with pytest.raises(ConfigError, match=name): train(progress=False, out_dir=tmp_path/'run', **TINY, **bad)
    assert not (tmp_path/'run').exists()

def test_cli_bad_target_exit_code(tmp_path):
    r = run([str(BIN/'hit_train'), '--target_rate_z1', '-3', '--out_dir', str(tmp_path/'bad')])
    assert r.returncode == 2 and 'target_rate_z1' in r.stderr and not (tmp_path/'bad').exists()

def test_papermill_targets_report(tmp_path):
    out = tmp_path/'run'
    r = run([str(BIN/'papermill'), str(ROOT/'nbs'/'train.ipynb'), str(tmp_path/'o.ipynb'),
             '-p', 'epochs', '2', '-p', 'batch_size', '500',
             '-p', 'target_rate_z2', '3', '-p', 'target_rate_z1', '10', '-p', 'rate_lr', '0.03', '-p', 'beta_max', '50',
             '-p', 'out_dir', str(out)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['target_rate_z2'] == 3 and 'beta2' in m['history'][0]
    cfg = json.loads((out/'config.json').read_text())
    assert (cfg['rate_lr'], cfg['beta_max']) == (0.03, 50.)             # the controller's parameters reach the run
    nb = json.loads((tmp_path/'o.ipynb').read_text())
    outs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
    assert sum('image/png' in o.get('data', {}) for o in outs) >= 3      # rates, beta trajectories, images
