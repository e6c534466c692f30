"Integration tests of atlas runs (one beta-conditioned model for a box of betas): train, resume, divergence, bad input."
import json
from pathlib import Path
import pytest, torch
import hit_nb.callbacks as C
from hit_nb.core import ConfigError, EXIT_BAD_INPUT
from hit_nb.runs import load_run
from hit_nb.train import train, RunDiverged
from conftest import TINY, BIN, run, crash_after
from test_train import assert_same_run, load_ck, papermill

ATLAS = dict(TINY, atlas=True, epochs=2)

@pytest.fixture(scope='module')
def atlas_done(tmp_path_factory):
    "An uninterrupted tiny atlas run (2 epochs of 8 steps)."
    out = tmp_path_factory.mktemp('atlas') / 'run'
    return out, train(progress=False, out_dir=out, **ATLAS)

def test_atlas_run_directory(atlas_done):
    "An atlas run writes a single run's directory; its metrics are the box centre's, and it says it is an atlas."
    out, m = atlas_done
    assert {'config.json', 'checkpoint.pt', 'metrics.json', 'samples.png', 'reconstructions.png', 'DONE'} <= \
           {p.name for p in out.iterdir()}
    assert m['status'] == 'done' and m['atlas'] is True and m['beta_box'] == [[0.1, 10.], [0.1, 10.]]
    assert (m['beta2'], m['beta1']) == (1., 1.) and len(m['history']) == 2
    model, cfg = load_run(out)
    assert type(model).__name__ == 'AtlasHVAE' and cfg['atlas_hidden'] == model.film.net[0].out_features
    from hit_nb.models import n_params
    assert n_params(model.base) == 122_713 and model.gate is not None    # the paper's model, gated by default
    assert m['n_params'] == n_params(model) == 122_713 + n_params(model.film) + n_params(model.gate)
    x = torch.rand(4, 1, 28, 28)
    with model.at([0.1, 0.1]) as a: lo = a.reconstruct(x)
    with model.at([10., 10.]) as a: hi = a.reconstruct(x)
    assert (lo - hi).abs().max() > 1e-4                      # trained: the betas change the model

def test_atlas_resume_after_interrupt_is_bit_identical(atlas_done, tmp_path):
    "A crash after epoch 1's checkpoint, then a rerun: the betas drawn per image continue their stream exactly."
    out = tmp_path / 'run'
    with pytest.raises(KeyboardInterrupt): train(progress=False, out_dir=out, callbacks=[crash_after(1)], **ATLAS)
    assert load_ck(out)['epoch'] == 1 and not (out/'DONE').exists()
    train(progress=False, out_dir=out, **ATLAS)
    assert_same_run(out, atlas_done[0])

def test_atlas_divergence_is_recorded(tmp_path, monkeypatch):
    "The divergence guard holds for an atlas: status diverged, the last finite checkpoint kept."
    real, calls = C.conditioned_loss, [0]
    def patched(*a, **k):
        calls[0] += 1
        ls = real(*a, **k)
        if calls[0] > 8 + 3: ls['loss'] = ls['loss'] * float('nan')
        return ls
    monkeypatch.setattr(C, 'conditioned_loss', patched)
    out = tmp_path / 'run'
    with pytest.raises(RunDiverged, match='epoch 2'): train(progress=False, out_dir=out, **ATLAS)
    m = json.loads((out/'metrics.json').read_text())
    assert m['status'] == 'diverged' and m['diverged_epoch'] == 2 and load_ck(out)['epoch'] == 1

BAD = [(['--beta_box', '[0, 10]'], 'finite and > 0'), (['--beta_box', '[-1, 10]'], 'finite and > 0'),
       (['--beta_box', '[0.1, NaN]'], 'finite'), (['--beta_box', '[0.1, Infinity]'], 'finite'),
       (['--beta_box', '[10, 0.1]'], 'lo=10 >= hi=0.1'), (['--beta_box', '[[0.1, 10], [2, 1]]'], 'beta1 has lo=2'),
       (['--beta2', '0.3'], 'drop beta2/beta1/betas'), (['--target_rate_z1', '5'], 'target rate'),
       (['--beta_box', '[0.1, 10'], 'not a JSON list')]

@pytest.mark.parametrize('args,msg', BAD, ids=[' '.join(a) for a, _ in BAD])
def test_atlas_bad_input_fails_before_writing(tmp_path, args, msg):
    "hit_train --atlas refuses a bad box or fixed betas / targets: exit 2, one line naming it, nothing written."
    out = tmp_path / 'run'
    r = run([str(BIN/'hit_train'), '--atlas', '--out_dir', str(out), '--epochs', '1', *args])
    assert r.returncode == EXIT_BAD_INPUT, r.stderr
    assert msg in r.stderr and 'Traceback' not in r.stderr and not out.exists()

def test_beta_box_without_atlas_is_refused(tmp_path):
    with pytest.raises(ConfigError, match='add atlas=True'):
        train(progress=False, out_dir=tmp_path/'run', beta_box=[0.1, 10.], **TINY)
    assert not (tmp_path/'run').exists()

def test_atlas_through_papermill(tmp_path):
    "papermill nbs/train.ipynb -p atlas True trains an atlas run; the notebook reads as its report."
    out = tmp_path / 'run'
    r = papermill(tmp_path/'out.ipynb', ('atlas', True), ('beta_box', '[0.3, 3]'), ('epochs', 1), ('batch_size', 500),
                  ('out_dir', out))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['status'] == 'done' and m['atlas'] and m['beta_box'] == [[0.3, 3.], [0.3, 3.]]
    assert json.loads((out/'config.json').read_text())['atlas_gate'] is True          # gated by default
    assert abs(m['beta2'] - 3 ** 0.5 * 0.3 ** 0.5) < 1e-12      # evaluated at the box's geometric centre
    assert 'betas drawn from' in (tmp_path/'out.ipynb').read_text()

@pytest.fixture(scope='module')
def clf(tmp_path_factory):
    "An untrained domain classifier with its measured test accuracy: the IS pipeline is real, its scores are not."
    from hit_nb.classifiers import mnist_cnn, confusion_matrix, accuracy
    from hit_nb.core import save_torch
    from hit_nb.data import load_dataset
    path = tmp_path_factory.mktemp('clf') / 'mnist5k.pt'
    torch.manual_seed(0); net = mnist_cnn()
    save_torch(path, dict(arch='mnist_cnn', dataset='mnist5k', state_dict=net.state_dict(),
                          test_accuracy=accuracy(confusion_matrix(net, load_dataset('mnist5k')))))
    return path

def evaluate_nb(out_nb, *params):
    args = [str(BIN/'papermill'), str(Path(__file__).parents[1]/'nbs'/'evaluate.ipynb'), str(out_nb)]
    for k, v in params: args += ['-p', k, str(v)]
    return run(args, cwd=out_nb.parent)

def test_atlas_evaluate_notebook(atlas_done, clf, tmp_path):
    "evaluate.ipynb -p betas: one run directory per point, a results table the figure notebooks load as a grid."
    import shutil
    from hit_nb.results import load_results
    from hit_nb.tensorboard import read_hparams, read_scalars
    from hit_nb.metrics import rd_metrics
    from hit_nb.atlas import conditioned
    from hit_nb.data import load_dataset
    out = tmp_path / 'run'; shutil.copytree(atlas_done[0], out)
    m = rd_metrics(conditioned(load_run(out)[0], [0.5, 2.]), load_dataset('mnist5k'))   # rates the atlas has
    targets = json.dumps([[m['rate_z2'], m['rate_z1']], [1e5, 0]])                        # ... and rates it has not
    r = evaluate_nb(tmp_path/'e.ipynb', ('run_dir', out), ('classifier', clf), ('n_samples', 500),
                    ('betas', '[[0.1, 0.1], [1, 1], [10, 0.316]]'), ('targets', targets),
                    ('plane', '[[0.1, 0.1], [1, 1], [3, 3]]'), ('workers', 2))
    assert r.returncode == 0, r.stderr[-2000:]
    df = load_results(out/'points'/'results.csv')
    assert list(zip(df.beta2, df.beta1)) == [(0.1, 0.1), (1., 1.), (10., 0.316)] and df.atlas.all()
    plane = load_results(out/'plane'/'results.csv')                    # the plane: one table, the same numbers
    assert list(zip(plane.beta2, plane.beta1)) == [(0.1, 0.1), (1., 1.), (3., 3.)] and set(plane.run_dir) == {'..'}
    for k in ('rate_z2', 'psnr', 'is', 'acc_rbfsvm_mu2'): assert list(plane[k][:2]) == list(df[k][:2]), k
    for d in df.run_path:
        m = json.loads((Path(d)/'metrics.json').read_text())
        assert m['evaluated'] and m['atlas_point'] and {'is', 'mi_z2', 'acc_rbfsvm_mu2', 'psnr'} <= set(m)
        assert {'samples.png', 'reconstructions.png', 'DONE'} <= {p.name for p in Path(d).iterdir()}
        hp = read_hparams(Path(d)/'tb')                                 # a session of its own in TensorBoard
        assert (hp['beta2'], hp['beta1'], hp['run_kind']) == (m['beta2'], m['beta1'], 'atlas point')
        assert read_scalars(Path(d)/'tb')['eval/acc_rbfsvm_mu2'] == [(m['epochs'], pytest.approx(m['acc_rbfsvm_mu2']))]
    nb = json.loads((tmp_path/'e.ipynb').read_text())
    pngs = sum('image/png' in o.get('data', {}) for c in nb['cells'] if c['cell_type'] == 'code' for o in c['outputs'])
    assert pngs >= 4                                   # the landscape, the samples, the probes, the images
    text = ''.join(''.join(o.get('text', [])) for c in nb['cells'] if c['cell_type'] == 'code' for o in c['outputs'])
    # rates with no training: found for the first target, not for the second
    assert text.count('reached at betas') == 1 and text.count('are outside what the box') == 1

@pytest.mark.parametrize('betas,msg', [('[[20, 1]]', 'outside the box'), ('[[1, 2, 3]]', '2 latent layers'),
                                       ('[[0.1, 0.1]', 'is not JSON')])
def test_atlas_evaluate_bad_betas(atlas_done, tmp_path, betas, msg):
    "A point the atlas cannot answer for fails before anything is written: no points folder."
    r = evaluate_nb(tmp_path/'e.ipynb', ('run_dir', atlas_done[0]), ('betas', betas))
    assert r.returncode != 0 and msg in (tmp_path/'e.ipynb').read_text()
    assert not (atlas_done[0]/'points').exists()

@pytest.mark.parametrize('targets,msg', [('[[5, -1]]', 'rates >= 0'), ('[[5, 15]', 'give pairs'),
                                         ('5:15:2', '(pairs), in nats')])
def test_atlas_evaluate_bad_targets(atlas_done, tmp_path, targets, msg):
    "Bad target rates fail before anything is evaluated or written."
    r = evaluate_nb(tmp_path/'e.ipynb', ('run_dir', atlas_done[0]), ('targets', targets))
    assert r.returncode != 0 and msg in (tmp_path/'e.ipynb').read_text()
    assert not (atlas_done[0]/'points').exists()

def test_targets_for_a_plain_run_are_refused(tiny_done, tmp_path):
    r = evaluate_nb(tmp_path/'e.ipynb', ('run_dir', tiny_done[0]), ('targets', '[[5, 15]]'))
    assert r.returncode != 0 and 'rate targets without training need an atlas' in (tmp_path/'e.ipynb').read_text()

@pytest.mark.parametrize('param,value', [('betas', '[[1, 1]]'), ('plane', 'tiny')])
def test_betas_for_a_plain_run_is_refused(tiny_done, tmp_path, param, value):
    r = evaluate_nb(tmp_path/'e.ipynb', ('run_dir', tiny_done[0]), (param, value))
    assert r.returncode != 0 and 'is no atlas run' in (tmp_path/'e.ipynb').read_text()
    assert not (tiny_done[0]/'points').exists() and not (tiny_done[0]/'plane').exists()

def test_atlas_bench_smoke(tmp_path):
    "bench/atlas.py --smoke runs every stage (step timing, grid point, atlas, their evaluations), so it cannot rot."
    import sys
    out = tmp_path/'bench.json'
    r = run([sys.executable, str(Path(__file__).parents[1]/'bench'/'atlas.py'), '--smoke', '--json', str(out)],
            timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    b = json.loads(out.read_text())
    assert b['grid_s'] == pytest.approx(25 * (b['train_grid_point_s'] + b['eval_grid_point_s']))
    assert b['atlas_s'] == pytest.approx(b['train_atlas_s'] + 25 * b['eval_atlas_point_s'])
    assert b['ratio'] == pytest.approx(b['grid_s'] / b['atlas_s']) and 'atlas / grid' in r.stdout

@pytest.mark.parametrize('model,box,point', [('lvae', None, [0.5, 2.]), ('ghvae', [[0.1, 10]] * 3, [1., 0.5, 2.])],
                         ids=['lvae', 'ghvae-L3'])
def test_atlas_other_architectures(clf, tmp_path, model, box, point):
    "The LVAE (with its KL warm-up) and a three-layer GHVAE train as atlases and are evaluated at a point."
    from hit_nb.atlas_eval import evaluate_atlas, point_dir
    out = tmp_path/'run'
    m = train(progress=False, out_dir=out, **dict(ATLAS, model=model, warmup_epochs=1), beta_box=box)
    assert [h['kl_weight'] for h in m['history']] == [0., 1.]
    df = evaluate_atlas(out, [point], classifier=clf, n_samples=200, progress=False)
    d = point_dir(out, point)
    assert d.name == '-'.join(f'b{len(point) - i}_{b:g}' for i, b in enumerate(point)) and len(df) == 1
    pm = json.loads((d/'metrics.json').read_text())
    assert {f'rate_z{l}' for l in range(1, len(point) + 1)} <= set(pm) and pm['evaluated'] and pm['atlas_point']
    assert [pm[f'beta{len(point) - i}'] for i in range(len(point))] == point
