"Ensembles of grid points (hit_nb.ensemble): each member is its single run, resumes exactly, and diverges alone."
import json, math, os
import pytest, torch
from hit_nb.core import ConfigError, load_torch, read_json
from hit_nb.config import make_config
from hit_nb.ensemble import Ensemble, member_configs, train_ensemble
from hit_nb.run_dir import STAGED as NEXT
from hit_nb.train import train
from hit_nb.trainer import ModelStep, start_run
from conftest import BIN, ROOT, TINY, run, AfterEpoch, crash_after

E2 = dict(TINY, epochs=2, batch_size=1000, device='cpu')   # 2 epochs of 4 steps on the bundled digits
BETAS = [(0.3, 1.), (1., 1.), (3., 0.5)]
ck = lambda d: load_torch(d/'checkpoint.pt')

def points(root, tag, betas=BETAS, **kw):
    return [dict(E2, beta2=b2, beta1=b1, out_dir=root/f'{tag}{i}') | kw for i, (b2, b1) in enumerate(betas)]

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "An uninterrupted ensemble of the three BETAS points."
    root = tmp_path_factory.mktemp('ens')
    pts = points(root, 'ref')
    return pts, train_ensemble(pts, progress=False)

def assert_same_runs(dirs, ref_dirs):
    "Bit-identical checkpoints (weights, Adam state, history) and test-set metrics."
    for d, r in zip(dirs, ref_dirs):
        a, b = ck(d), ck(r)
        assert a['epoch'] == b['epoch'] and a['history'] == b['history']
        for k in b['model']: assert torch.equal(a['model'][k], b['model'][k]), k
        for i, s in b['optimizer']['state'].items():
            assert torch.equal(a['optimizer']['state'][i]['exp_avg_sq'], s['exp_avg_sq'])
        ma, mb = read_json(d/'metrics.json'), read_json(r/'metrics.json')
        assert {k: v for k, v in ma.items() if k != 'train_seconds'} == \
               {k: v for k, v in mb.items() if k != 'train_seconds'}

def assert_close_runs(ms, solo, dirs, solo_dirs, rel=1e-5):
    "float32: history and test-set metrics to 1e-5 relative; weights to 1e-3 (one Adam step at lr 1e-3: see 09a)."
    for m, s, d, sd in zip(ms, solo, dirs, solo_dirs):
        assert m['status'] == s['status'] == 'done' and set(m) == set(s)
        for k in [k for k in s if k.startswith('rate_') or k in ('distortion', 'psnr', 'elbo')]:
            assert m[k] == pytest.approx(s[k], rel=rel), k
        for hm, hs in zip(m['history'], s['history']):
            assert hm.keys() == hs.keys()
            for k in hs: assert hm[k] == pytest.approx(hs[k], rel=rel, abs=1e-6), (k, hm['epoch'])
        a, b = ck(d), ck(sd)
        assert max((a['model'][k] - b['model'][k]).abs().max().item() for k in b['model']) < 1e-3
        assert torch.equal(a['rng']['torch'], b['rng']['torch']) and torch.equal(a['rng']['data'], b['rng']['data'])

@pytest.mark.parametrize('dataset,model,betas', [('svhn', 'ghvae', [[.3, 1.], [3., .5]]),
                                                 ('mnist5k', 'ghvae', [[.3, 1.], [3., .5]]),
                                                 ('mnist5k', 'lvae', [[.3, 1.], [3., .5]]),
                                                 ('mnist5k', 'ghvae', [[.3, 1., 2.], [3., .5, 1.]])])
def test_member_equals_single_run_in_float64(dataset, model, betas, tmp_path):
    "Every architecture (GHVAE 32x32 and 28x28, LVAE, L = 3): 3 ensemble steps = 3 train_steps, float64, 1e-10."
    cfgs = [make_config(dataset=dataset, model=model, betas=b, lr=1e-3, device='cpu', out_dir=tmp_path/str(i))
            for i, b in enumerate(betas)]
    def states():
        sts = [start_run(c) for c in cfgs]
        for st in sts: st.model.double(); st.opt = torch.optim.Adam(st.model.parameters(), lr=1e-3)
        return sts
    shape = (3, 32, 32) if dataset == 'svhn' else (1, 28, 28)
    g = torch.Generator().manual_seed(0)
    xs = [torch.rand(12, *shape, generator=g, dtype=torch.float64) for _ in range(3)]
    if dataset != 'svhn': xs = [x.round() for x in xs]
    rng = torch.get_rng_state()
    solo = []
    for st in states():
        torch.set_rng_state(rng)
        step = ModelStep(st)
        for x in xs: step(x, torch.tensor(st.cfg['betas'], dtype=torch.float64), 0.5)
        solo.append(st.model.state_dict())
    ens = Ensemble(states()); torch.set_rng_state(rng)
    for x in xs: ens.step(x, kl_weight=0.5)
    for k, s in enumerate(solo):
        st = ens.sync(k)
        assert max((st.model.state_dict()[n] - s[n]).abs().max().item() for n in s) < 1e-10

def test_member_equals_single_train(tmp_path):
    "After an epoch, each member's run directory holds what `train` of its point gives, to float32 rounding."
    pts = points(tmp_path, 'e', epochs=1)
    ms = train_ensemble(pts, progress=False)
    solo = [train(progress=False, **dict(p, out_dir=tmp_path/f's{i}')) for i, p in enumerate(pts)]
    assert_close_runs(ms, solo, [p['out_dir'] for p in pts], [tmp_path/f's{i}' for i in range(len(pts))])
    assert sorted(f.name for f in pts[0]['out_dir'].iterdir()) == sorted(f.name for f in (tmp_path/'s0').iterdir())

@pytest.mark.filterwarnings('ignore:rate_z.*not reached')   # one epoch is too short to reach them: not the question
@pytest.mark.parametrize('kind', ['lvae', 'targets'])
def test_lvae_and_rate_targets(kind, tmp_path):
    "The LVAE with its KL warm-up, and rate-targeted members with their own controllers, equal their single runs."
    kw = dict(model='lvae', epochs=1) if kind == 'lvae' else dict(rate_lr=0.05, epochs=1)
    if kind == 'lvae': pts = points(tmp_path, 'e', BETAS[:2], **kw)
    else: pts = [dict(E2, target_rate_z2=t2, target_rate_z1=t1, out_dir=tmp_path/f'e{i}', **kw)
                 for i, (t2, t1) in enumerate([(2., 8.), (6., 4.)])]
    ms = train_ensemble(pts, progress=False)
    solo = [train(progress=False, **dict(p, out_dir=tmp_path/f's{i}')) for i, p in enumerate(pts)]
    assert_close_runs(ms, solo, [p['out_dir'] for p in pts], [tmp_path/f's{i}' for i in range(len(pts))])
    if kind == 'targets':
        assert ms[0]['final_beta2'] != ms[1]['final_beta2']
        assert ms[0]['final_beta2'] == pytest.approx(solo[0]['final_beta2'], rel=1e-5)

def test_killed_ensemble_resumes_exactly(reference, tmp_path):
    "A kill after epoch 1, and a kill inside a checkpoint commit: the rerun ends bit for bit as uninterrupted."
    ref_dirs = [p['out_dir'] for p in reference[0]]
    pts = points(tmp_path, 'k')
    with pytest.raises(KeyboardInterrupt): train_ensemble(pts, progress=False, callbacks=[crash_after(1)])
    assert [ck(p['out_dir'])['epoch'] for p in pts] == [1, 1, 1]
    assert all(read_json(p['out_dir']/'metrics.json')['status'] == 'running' for p in pts)
    train_ensemble(pts, progress=False)
    assert_same_runs([p['out_dir'] for p in pts], ref_dirs)

    pts = points(tmp_path, 'c')
    real, calls = os.replace, []
    def dies_after_first_rename(a, b):        # epoch 2's commit: member 0 renamed, then the process dies
        if str(a).endswith(NEXT): calls.append(a)
        if len(calls) == 5: raise KeyboardInterrupt
        real(a, b)
    os.replace = dies_after_first_rename
    try:
        with pytest.raises(KeyboardInterrupt): train_ensemble(pts, progress=False)
    finally: os.replace = real
    assert [ck(p['out_dir'])['epoch'] for p in pts] == [2, 1, 1] and (pts[1]['out_dir']/NEXT).exists()
    train_ensemble(pts, progress=False)
    assert_same_runs([p['out_dir'] for p in pts], ref_dirs)

def test_member_checkpoint_resumes_with_plain_train(reference, tmp_path):
    "An ensemble killed after epoch 1; `train` finishes one member alone, as its single run would."
    pts = points(tmp_path, 'p')
    with pytest.raises(KeyboardInterrupt): train_ensemble(pts, progress=False, callbacks=[crash_after(1)])
    m = train(progress=False, **pts[1])
    solo = train(progress=False, **dict(pts[1], out_dir=tmp_path/'solo'))
    assert_close_runs([m], [solo], [pts[1]['out_dir']], [tmp_path/'solo'], rel=1e-4)   # 2 epochs: float32 drifts

def test_nan_in_one_member_reaches_no_other(reference, tmp_path):
    "NaN weights injected into member 1 after epoch 1: it is recorded as diverged; the others are unchanged."
    pts = points(tmp_path, 'n')
    def poison(t):
        if t.epoch == 0:
            with torch.no_grad():
                for p in t.step.ens.params.values(): p[1] = math.nan
    ms = train_ensemble(pts, progress=False, callbacks=[AfterEpoch(poison)])
    assert [m['status'] for m in ms] == ['done', 'diverged', 'done']
    assert ms[1]['diverged_epoch'] == 2 and ck(pts[1]['out_dir'])['epoch'] == 1 and len(ms[1]['history']) == 1
    assert not (pts[1]['out_dir']/'DONE').exists()
    ref_dirs = [p['out_dir'] for p in reference[0]]
    assert_same_runs([pts[0]['out_dir'], pts[2]['out_dir']], [ref_dirs[0], ref_dirs[2]])
    assert math.isfinite(train(progress=False, **pts[1])['rate_z2'])     # its last finite checkpoint goes on alone

def test_members_that_cannot_share_a_program(tmp_path):
    "Points that differ in more than their betas are refused before anything is written."
    pts = points(tmp_path, 'b', BETAS[:2])
    with pytest.raises(ConfigError, match=r'batch_size \(1000 vs 250\)'):
        train_ensemble([pts[0], dict(pts[1], batch_size=250)], progress=False)
    with pytest.raises(ConfigError, match='beta2=-1'):
        train_ensemble([pts[0], dict(pts[1], beta2=-1)], progress=False)
    assert not any(tmp_path.iterdir())

def test_bench_smoke():
    "bench/ensemble.py --smoke runs (its float64 check included), so the benchmark cannot rot."
    import sys
    from conftest import ROOT, run
    r = run([sys.executable, str(ROOT/'bench'/'ensemble.py'), '--smoke'], timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'max |dw|' in r.stdout and 'ensemble/loop throughput' in r.stdout

def test_gpu_bench_smoke():
    "bench/gpu.py --smoke runs every part of the prepared GPU check at toy size on the CPU, and its smoke passes."
    import sys
    from conftest import ROOT, run
    r = run([sys.executable, str(ROOT/'bench'/'gpu.py'), '--smoke'], timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for line in ('kill + resume bit-identical: True', 'single run, pinned kernels', 'ensemble K=   2', 'projection',
                 'smoke passed'):
        assert line in r.stdout, line

def papermill_ensemble(out, cwd, **params):
    args = [str(BIN/'papermill'), str(ROOT/'nbs'/'train_ensemble.ipynb'), str(out)]
    for k, v in params.items(): args += ['-p', k, str(v)]
    return run(args, cwd=cwd, timeout=300)

def test_notebook_trains_a_grid_and_refuses_a_mix(tmp_path):
    "papermill nbs/train_ensemble.ipynb trains a grid as one ensemble into single-run directories (its table and figures in the notebook); members that cannot share a program are refused before anything is written."
    d = tmp_path/'grid'
    r = papermill_ensemble(tmp_path/'o.ipynb', tmp_path, grid='1x0.1,1', epochs=1, sweep_dir=d)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = sorted(p for p in d.iterdir() if p.is_dir())
    assert [p.name for p in runs] == ['mnist5k-ghvae-b2_1-b1_0.1-e1-s2', 'mnist5k-ghvae-b2_1-b1_1-e1-s2']
    for p in runs: assert (p/'DONE').exists() and read_json(p/'metrics.json')['status'] == 'done'
    outs = [o for c in json.loads((tmp_path/'o.ipynb').read_text())['cells'] for o in c.get('outputs', [])]
    assert sum('image/png' in o.get('data', {}) for o in outs) == 2                 # the rate curves and the samples
    assert any('ensemble of 2' in ''.join(o.get('text', '')) for o in outs)        # its progress bar
    members = tmp_path/'members.json'
    members.write_text(json.dumps([dict(E2, out_dir=str(tmp_path/'m0')), dict(E2, lr=1e-4, out_dir=str(tmp_path/'m1'))]))
    r = papermill_ensemble(tmp_path/'bad.ipynb', tmp_path, members=members)
    assert r.returncode != 0 and 'differ in lr (0.001 vs 0.0001)' in r.stderr, r.stderr[-3000:]
    assert not (tmp_path/'m0').exists() and not (tmp_path/'m1').exists()
