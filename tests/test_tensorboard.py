"""Integration tests of the TensorBoard logs: every scalar once per epoch (also after a kill and resume), the same training
with and without them, ensembles, rate targets and atlases, the opt-out, and a missing or broken TensorBoard."""
import json, shutil, sys
from pathlib import Path
import pytest
from hit_nb.train import train
from hit_nb.ensemble import train_ensemble
from hit_nb.tensorboard import TB_DIR, read_hparams, read_scalars
from conftest import TINY, BIN, run, killed_hit_train, AfterEpoch, crash_after
from test_train import assert_same_run

EPOCH_TAGS = ('train/loss', 'train/distortion', 'train/rate_z2', 'train/rate_z1', 'train/rate', 'train/kl_weight')
TEST_TAGS = ('test/rate_z2', 'test/rate_z1', 'test/rate', 'test/distortion', 'test/mse', 'test/psnr')

def curves(logdir) -> dict:
    "read_scalars of `logdir` without the one number that is a time."
    return {k: v for k, v in read_scalars(logdir).items() if k != 'run/train_seconds'}

def images(logdir) -> dict:
    "tag -> the steps of its images, read with TensorBoard's EventAccumulator."
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(logdir), size_guidance={'images': 0}, purge_orphaned_data=False); ea.Reload()
    return {t: [e.step for e in ea.Images(t)] for t in ea.Tags()['images']}

def assert_log(run_dir, epochs, extra_tags=(), all_images=True):
    "The run's log holds every epoch scalar once per epoch, equal (float32) to metrics.json's history, and its summary."
    m = json.loads((Path(run_dir)/'metrics.json').read_text())
    sc = read_scalars(Path(run_dir)/TB_DIR)
    for tag in (*EPOCH_TAGS, *extra_tags):
        assert [s for s, _ in sc[tag]] == list(range(1, epochs + 1)), (tag, sc[tag])
    for (s, v), h in zip(sc['train/loss'], m['history']): assert v == pytest.approx(h['loss'], rel=1e-6)
    for (s, v), h in zip(sc['train/rate'], m['history']):
        assert v == pytest.approx(h['rate_z2'] + h['rate_z1'], rel=1e-6)
    for tag in TEST_TAGS: assert sc[tag] == [(epochs, pytest.approx(m[tag[5:]], rel=1e-6))], tag
    im = images(Path(run_dir)/TB_DIR)
    for steps in im.values():                       # once each; a kill between a checkpoint and its log loses images
        assert steps == (list(range(1, epochs + 1)) if all_images else sorted(set(steps))) and steps[-1] == epochs
    assert sorted(im) == ['images/reconstructions', 'images/samples']
    return sc

def test_single_run_log(tiny_done):
    "A finished run's log: per epoch loss, distortion, rates, total rate, warm-up factor; images; test metrics; HParams."
    out, m = tiny_done
    assert_log(out, 3)
    assert read_hparams(out/TB_DIR) == dict(beta2=1., beta1=1., run_kind='fixed betas', dataset='mnist5k', model='ghvae',
                                           epochs=3., seed=2.)

def test_logging_does_not_change_the_run(tiny_done, tmp_path):
    "tensorboard=False trains bit for bit the run that logs scalars and images every epoch, and writes no tb/."
    out = tmp_path/'run'
    train(progress=False, out_dir=out, tensorboard=False, **TINY)
    assert not (out/TB_DIR).exists()
    assert_same_run(out, tiny_done[0])

def test_sigkill_and_resume_log_each_epoch_once(tiny_done, tmp_path):
    "SIGKILL hit_train after its first checkpoint, rerun: each epoch once in the log, the values of an uninterrupted run."
    out = tmp_path/'run'
    args = killed_hit_train(out)
    r = run(args)
    assert r.returncode == 0, r.stderr
    sc = assert_log(out, 3, all_images=False)
    assert curves(out/TB_DIR) == curves(tiny_done[0]/TB_DIR)              # bit-identical resume, identical curves
    assert len(list((out/TB_DIR).glob('*tfevents*'))) == 2                # one run log, one summary

def test_rolled_back_or_lost_log_is_repaired(tiny_done, tmp_path):
    "A log ahead of its checkpoint (epochs logged, checkpoint rolled back) or behind it (log deleted) ends each epoch once."
    out, saved = tmp_path/'run', tmp_path/'ck1.pt'
    def crash(t):
        if t.epoch == 0: shutil.copy(out/'checkpoint.pt', saved)
        if t.epoch == 1: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): train(progress=False, out_dir=out, callbacks=[AfterEpoch(crash)], **TINY)
    assert [s for s, _ in read_scalars(out/TB_DIR)['train/loss']] == [1, 2]
    shutil.copy(saved, out/'checkpoint.pt')                                # back to epoch 1: epoch 2 is logged again
    with pytest.raises(KeyboardInterrupt): train(progress=False, out_dir=out, callbacks=[crash_after(2)], **TINY)
    shutil.rmtree(out/TB_DIR)                                              # the log lost: epochs 1, 2 from the history
    train(progress=False, out_dir=out, **TINY)
    sc = read_scalars(out/TB_DIR)
    for tag in EPOCH_TAGS: assert [s for s, _ in sc[tag]] == [1, 2, 3], tag
    assert curves(out/TB_DIR) == curves(tiny_done[0]/TB_DIR)
    assert images(out/TB_DIR)['images/samples'] == [3]                    # images of the lost epochs cannot come back
    assert_same_run(out, tiny_done[0])

def test_rate_targeted_run_logs_betas_and_targets(tmp_path):
    "A rate-targeted layer's adapted beta and its target, every epoch; the HParams session names the target."
    out = tmp_path/'run'
    m = train(progress=False, out_dir=out, target_rate_z2=5., tb_image_every=2, **TINY)
    sc = read_scalars(out/TB_DIR)
    assert [v for _, v in sc['train/target_rate_z2']] == [5.] * 3 and 'train/target_rate_z1' not in sc
    assert [v for _, v in sc['train/beta2']] == pytest.approx([h['beta2'] for h in m['history']], rel=1e-6)
    assert sc['run/final_beta2'] == [(3, pytest.approx(m['final_beta2'], rel=1e-6))]
    assert images(out/TB_DIR)['images/samples'] == [2, 3]                 # every 2nd epoch and the last
    hp = read_hparams(out/TB_DIR)
    assert hp['target_rate_z2'] == 5. and hp['beta1'] == 1. and 'beta2' not in hp and hp['run_kind'] == 'rate target'

def test_atlas_logs(tmp_path):
    "An atlas run logs its training records and, at the end, the test metrics of its box's centre."
    out = tmp_path/'atlas'
    m = train(progress=False, out_dir=out, atlas=True, beta_box=[0.3, 3.], **dict(TINY, epochs=2))
    sc = read_scalars(out/TB_DIR)
    for tag in EPOCH_TAGS: assert [s for s, _ in sc[tag]] == [1, 2], tag
    assert sc['test/psnr'] == [(2, pytest.approx(m['psnr'], rel=1e-6))]
    assert read_hparams(out/TB_DIR)['run_kind'] == 'atlas'

def test_ensemble_members_log_like_single_runs(tmp_path):
    "Each member of a killed and resumed ensemble logs its own run once per epoch, as the single run of its betas."
    betas = [[0.5, 1.], [2., 0.5]]
    pts = [dict(TINY, beta2=b2, beta1=b1, out_dir=str(tmp_path/f'm{i}')) for i, (b2, b1) in enumerate(betas)]
    with pytest.raises(KeyboardInterrupt): train_ensemble(pts, progress=False, callbacks=[crash_after(2)])
    train_ensemble(pts, progress=False)
    solo = tmp_path/'solo'
    train(progress=False, **dict(pts[1], out_dir=solo))
    for p, (b2, b1) in zip(pts, betas):
        assert_log(p['out_dir'], 3)
        hp = read_hparams(Path(p['out_dir'])/TB_DIR)
        assert (hp['beta2'], hp['beta1']) == (b2, b1)
    a, b = curves(Path(pts[1]['out_dir'])/TB_DIR), curves(solo/TB_DIR)
    assert a.keys() == b.keys()
    for tag in a: assert [v for _, v in a[tag]] == pytest.approx([v for _, v in b[tag]], rel=1e-5), tag

def test_opt_out_on_the_command_line(tmp_path):
    "hit_train --no-tensorboard and papermill -p tensorboard False write no log."
    out = tmp_path/'cli'
    r = run([str(BIN/'hit_train'), '--out_dir', str(out), '--epochs', '1', '--batch_size', '500', '--threads', '1',
             '--quiet', '--no-tensorboard'])
    assert r.returncode == 0, r.stderr
    assert (out/'DONE').exists() and not (out/TB_DIR).exists()
    assert json.loads((out/'config.json').read_text())['tensorboard'] is False
    from test_train import papermill
    out = tmp_path/'nb'
    r = papermill(tmp_path/'t.ipynb', ('epochs', 1), ('batch_size', 500), ('out_dir', out), ('tensorboard', False))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out/'DONE').exists() and not (out/TB_DIR).exists()

FAKE = {'missing': None, 'broken': "raise RuntimeError('this build of TensorBoard is broken')\n"}

@pytest.mark.parametrize('kind', FAKE)
def test_missing_or_broken_tensorboard_is_one_warning(kind, tiny_done, tmp_path):
    "Without a working TensorBoard, training says so in one line, succeeds, and trains bit for bit the run with it."
    env, pre = {}, ''
    if kind == 'missing': pre = "import sys; sys.modules['tensorboard'] = None\n"
    else:
        (tmp_path/'fake'/'tensorboard').mkdir(parents=True)
        (tmp_path/'fake'/'tensorboard'/'__init__.py').write_text(FAKE[kind])
        env = dict(PYTHONPATH=str(tmp_path/'fake'))
    out, cli = tmp_path/'run', tmp_path/'hit_train_cli.py'
    cli.write_text(pre + "from hit_nb.train import hit_train\nhit_train()\n")    # the console script, after `pre`
    r = run([sys.executable, str(cli), '--out_dir', str(out), '--epochs', '3', '--batch_size', '500', '--threads', '1',
             '--quiet'], env_extra=env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('hit_nb: TensorBoard '), r.stderr
    assert ('is not installed' if kind == 'missing' else 'RuntimeError: this build of TensorBoard is broken') in lines[0]
    assert (out/'DONE').exists() and not (out/TB_DIR).exists()
    assert_same_run(out, tiny_done[0])

def test_bench_smoke(tmp_path):
    "bench/tb_logging.py --smoke runs every stage and reports ratios against the run without a log."
    from conftest import ROOT
    r = run([sys.executable, str(ROOT/'bench'/'tb_logging.py'), '--smoke', '--json', str(tmp_path/'b.json')])
    assert r.returncode == 0, r.stderr[-2000:]
    b = json.loads((tmp_path/'b.json').read_text())
    for m in ('off', 'scalars', 'images'):
        assert b['step_ratio'][m] == pytest.approx(b['step_s'][m] / b['step_s']['off'])
        assert b['epoch_ratio'][m] == pytest.approx(b['epoch_wall_s'][m] / b['epoch_wall_s']['off'])
    assert set(b['calls']) == {'ghvae-mnist5k', 'ghvae-svhn'} and 'step ratio' in r.stdout
