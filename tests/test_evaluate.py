"Integration tests of evaluating a run: every key, seeded identical JSON, bad input, the papermill notebook."
import json, shutil
from pathlib import Path
import pytest, torch
from hit_nb.evaluate import evaluate_run
from hit_nb.classifiers import train_classifier
from hit_nb.core import ConfigError
from hit_nb.config import make_config
from hit_nb.probes import PROBES
from conftest import ROOT, BIN, run

KEYS = ['rate_z2', 'rate_z1', 'rate', 'distortion', 'psnr', 'is', 'is_std', 'is_diversity', 'is_sharpness', 'mi_z2',
        'mi_z1', *[f'acc_{p}_{l}' for p in PROBES for l in ('mu2', 'mu1')], 'acc_bound_z2', 'acc_bound_rate_z2',
        'label_entropy', 'classifier_accuracy', 'evaluated']
FAST = dict(n_samples=2000, progress=False)

@pytest.fixture(scope='module')
def clf(tmp_path_factory):
    path = tmp_path_factory.mktemp('clf') / 'mnist5k.pt'
    train_classifier('mnist5k', out=path, epochs=1, progress=False)
    return path

@pytest.fixture
def run_copy(tiny_done, tmp_path):
    dst = tmp_path / 'run'; shutil.copytree(tiny_done[0], dst)
    return dst

def test_evaluate_adds_every_metric_and_is_seeded(run_copy, clf):
    m = evaluate_run(run_copy, classifier=clf, **FAST)
    for k in KEYS: assert k in m, k
    first = (run_copy/'metrics.json').read_text()
    assert json.loads(first) == m
    evaluate_run(run_copy, classifier=clf, **FAST)
    assert (run_copy/'metrics.json').read_text() == first          # identical JSON on a second evaluation
    assert 1 <= m['is'] <= 10 and 1 <= m['is_diversity'] <= 10 and 0.1 <= m['is_sharpness'] <= 1
    assert -0.01 <= m['mi_z2'] <= m['label_entropy'] + 1e-9     # a Monte-Carlo estimate: near 0 it can dip below
    assert all(0 <= m[k] <= 1 for k in KEYS if k.startswith('acc_'))
    assert 0.1 <= m['acc_bound_z2'] <= 1 and abs(m['rate'] - m['rate_z2'] - m['rate_z1']) < 1e-9
    assert m['history'] and m['status'] == 'done'                   # training's keys are kept
    from hit_nb.tensorboard import read_scalars
    sc = read_scalars(run_copy/'tb')                                   # the run's TensorBoard log has them too
    for k in KEYS[5:-1]: assert sc[f'eval/{k}'] == [(3, pytest.approx(m[k], rel=1e-6, abs=1e-7))], k
    assert sc['test/psnr'] == [(3, pytest.approx(m['psnr'], rel=1e-6))] and len(sc['train/loss']) == 3

def test_evaluate_refuses_unfinished_run(run_copy, clf):
    (run_copy/'DONE').unlink()
    before = (run_copy/'metrics.json').read_text()
    with pytest.raises(ConfigError, match='not a finished run'): evaluate_run(run_copy, classifier=clf, **FAST)
    assert (run_copy/'metrics.json').read_text() == before

def test_evaluate_refuses_missing_or_unverified_classifier(run_copy, clf, tmp_path):
    before = (run_copy/'metrics.json').read_text()
    with pytest.raises(FileNotFoundError, match='train_classifier'):
        evaluate_run(run_copy, classifier=tmp_path/'none.pt', **FAST)
    rec = torch.load(clf, weights_only=True); del rec['test_accuracy']
    torch.save(rec, tmp_path/'noacc.pt')
    with pytest.raises(ValueError, match='test_accuracy'):
        evaluate_run(run_copy, classifier=tmp_path/'noacc.pt', **FAST)
    assert (run_copy/'metrics.json').read_text() == before

def test_evaluate_refuses_classifier_of_another_dataset(run_copy, clf, tmp_path):
    rec = torch.load(clf, weights_only=True); rec['dataset'] = 'mnist'
    torch.save(rec, tmp_path/'mnist.pt')
    with pytest.raises(ConfigError, match="trained on 'mnist'"):
        evaluate_run(run_copy, classifier=tmp_path/'mnist.pt', **FAST)

def test_evaluate_notebook(run_copy, clf, tmp_path):
    out = tmp_path / 'eval.ipynb'
    r = run([str(BIN/'papermill'), str(ROOT/'nbs'/'evaluate.ipynb'), str(out), '-p', 'run_dir', str(run_copy),
             '-p', 'classifier', str(clf), '-p', 'n_samples', '2000'], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((run_copy/'metrics.json').read_text())
    assert m['evaluated'] is True
    nb = json.loads(out.read_text())
    outs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
    assert sum('image/png' in o.get('data', {}) for o in outs) >= 2

def test_evaluate_notebook_bad_run_dir(tmp_path):
    r = run([str(BIN/'papermill'), str(ROOT/'nbs'/'evaluate.ipynb'), str(tmp_path/'e.ipynb'),
             '-p', 'run_dir', str(tmp_path/'nope')], cwd=tmp_path)
    assert r.returncode != 0 and 'not a finished run' in (tmp_path/'e.ipynb').read_text()

def test_evaluate_notebook_default_run_dir():
    "Run bare, evaluate.ipynb evaluates the run directory a bare train.ipynb trains."
    import papermill
    ps = papermill.inspect_notebook(str(ROOT/'nbs'/'evaluate.ipynb'))
    assert eval(ps['run_dir']['default']) == make_config()['out_dir'] == 'runs/mnist5k-ghvae-b2_1-b1_1-e30-s2'
