"""Datasets of one's own (hit_nb.data): an image folder, an .npz of arrays, a loader by import path; every bad input
refused with one error that names the file and the fix."""
import sys
import numpy as np, pytest, torch
from PIL import Image
from hit_nb.core import ConfigError
from hit_nb.data import load_dataset, dataset_spec

RNG = np.random.default_rng(0)


def write_folder(root, n_per_class=5, classes=('cat', 'dog'), size=16, mode='L'):
    "A labelled folder: n_per_class random images in each class sub-folder; returns {path: (label, pixels)}."
    out = {}
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            shape = (size, size) if mode == 'L' else (size, size, 3)
            px = RNG.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(px).save(root / c / f'{i}.png')
            out[root / c / f'{i}.png'] = (k, px)
    return out


def test_folder_with_splits_pixel_for_pixel(tmp_path):
    "train/ and test/ folders are the splits; every image and label comes back exactly, RGB as (3, H, W)."
    tr = write_folder(tmp_path / 'd' / 'train', 4, mode='RGB')
    te = write_folder(tmp_path / 'd' / 'test', 2, mode='RGB')
    d = load_dataset(tmp_path / 'd')
    assert (d.shape, d.likelihood, d.classes, d.name) == ((3, 16, 16), 'gaussian', ['cat', 'dog'],
                                                          str((tmp_path / 'd').resolve()))
    for x, y, files in ((d.train_x, d.train_y, tr), (d.test_x, d.test_y, te)):
        want = sorted(files.values(), key=lambda v: v[0])               # class folders in order, files sorted in each
        assert y.tolist() == [k for k, _ in want]
        assert torch.equal(x, torch.from_numpy(np.stack([px for _, px in want])).permute(0, 3, 1, 2))


def test_unlabelled_binary_folder(tmp_path):
    "Images directly in the folder: unlabelled; two pixel values (0/255) make it binary, a Bernoulli dataset of 0/1."
    for i in range(10):
        Image.fromarray((RNG.random((20, 20)) > 0.5).astype(np.uint8) * 255).save(tmp_path / f'{i}.png')
    d = load_dataset(tmp_path)
    assert (d.labelled, d.likelihood, d.shape, len(d.train_x), len(d.test_x)) == (False, 'bernoulli', (1, 20, 20), 8, 2)
    assert set(torch.cat([d.train_x, d.test_x]).unique().tolist()) == {0, 1}
    assert 'unlabelled' in repr(d)


def test_npz_and_import_path(tmp_path, monkeypatch):
    "An .npz of arrays (floats in [0, 1], NHWC) and a loader named by its import path give the same dataset."
    x = RNG.random((12, 28, 28, 1)).astype(np.float32)
    y = np.arange(12) % 4
    np.savez(tmp_path / 'd.npz', x_train=x[:10], x_test=x[10:], y_train=y[:10], y_test=y[10:])
    d = load_dataset(tmp_path / 'd.npz')
    assert torch.equal(d.train_x, torch.from_numpy(np.rint(x[:10] * 255).astype(np.uint8)).permute(0, 3, 1, 2))
    assert (d.n_classes, d.likelihood) == (4, 'gaussian')
    (tmp_path / 'my_loader.py').write_text(
        "import numpy as np\n"
        f"def load():\n    f = np.load({str(tmp_path / 'd.npz')!r})\n    return {{k: f[k] for k in f.files}}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    e = load_dataset('my_loader:load')
    assert torch.equal(e.train_x, d.train_x) and torch.equal(e.test_y, d.test_y)
    assert dataset_spec('my_loader:load') == 'my_loader:load'


def error(path, **kw) -> str:
    with pytest.raises(ConfigError) as e: load_dataset(path, **kw)
    return str(e.value)


def test_bad_folders(tmp_path):
    "Each bad folder: one ConfigError naming the file (or folder) and what to do; nothing is written anywhere."
    (tmp_path / 'empty').mkdir()
    assert 'holds no images: give a folder of PNG or JPEG images' in error(tmp_path / 'empty')

    write_folder(tmp_path / 'mixed', 3)
    Image.fromarray(np.zeros((18, 18), np.uint8)).save(tmp_path / 'mixed' / 'dog' / 'odd.png')
    msg = error(tmp_path / 'mixed')
    assert str(tmp_path / 'mixed' / 'dog' / 'odd.png') in msg and 'is 18x18 but the other images are 16x16' in msg

    write_folder(tmp_path / 'notes', 3)
    (tmp_path / 'notes' / 'cat' / 'notes.txt').write_text('hello')
    msg = error(tmp_path / 'notes')
    assert str(tmp_path / 'notes' / 'cat' / 'notes.txt') in msg and 'is not a PNG or JPEG image' in msg

    write_folder(tmp_path / 'broken', 3)
    (tmp_path / 'broken' / 'cat' / 'x.png').write_bytes(b'not a png')
    assert 'x.png cannot be read as an image' in error(tmp_path / 'broken')

    write_folder(tmp_path / 'both', 3)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / 'both' / 'loose.png')
    assert 'holds both files (loose.png, ...) and sub-folders' in error(tmp_path / 'both')

    write_folder(tmp_path / 'split' / 'train', 3)
    write_folder(tmp_path / 'split' / 'test', 1, classes=('cat', 'cow'))
    assert 'test/ has classes that train/ has not (cow)' in error(tmp_path / 'split')

    assert 'there is no folder' in error(tmp_path / 'nowhere')


def test_bad_npz(tmp_path):
    "A missing array, labels that do not match the images, floats out of range, a file that is no .npz."
    x = RNG.integers(0, 256, (6, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / 'a.npz', x_train=x)
    msg = error(tmp_path / 'a.npz')
    assert str(tmp_path / 'a.npz') in msg and 'has no array x_test (it holds: x_train)' in msg
    np.savez(tmp_path / 'b.npz', x_train=x[:4], x_test=x[4:], y_train=np.arange(3), y_test=[0, 1])
    assert 'y_train holds 3 labels of shape (3,) for 4 images' in error(tmp_path / 'b.npz')
    np.savez(tmp_path / 'c.npz', x_train=x[:4] * 2.0, x_test=x[4:] * 1.0)
    assert 'floats must lie in [0, 1]' in error(tmp_path / 'c.npz')
    np.savez(tmp_path / 'd.npz', x_train=x[:4], x_test=x[4:], labels=np.arange(6))
    assert 'holds arrays hit_nb does not read (labels)' in error(tmp_path / 'd.npz')
    (tmp_path / 'e.npz').write_text('no zip')
    assert 'cannot be read as an .npz file' in error(tmp_path / 'e.npz')
    assert 'no such file' in error(tmp_path / 'missing.npz')
    np.savez(tmp_path / 'f.npz', x_train=x[:4], x_test=x[4:], y_train=np.arange(4))
    assert 'only y_train is given' in error(tmp_path / 'f.npz')


# ------------------------------------------------------------------ training, evaluating, sweeping on one's own data

import json, os, subprocess
from pathlib import Path
from conftest import BIN, run
from hit_nb.config import make_config
from hit_nb.train import train
from hit_nb.evaluate import evaluate_run
from hit_nb.run_dir import RunDir
from hit_nb.models import register_model, HVAE, gauss_params, randn_like

TINY_OWN = dict(epochs=2, batch_size=16, threads=1, tensorboard=False)


def digits_folder(root, n=40, size=16):
    "A labelled folder of n blurry 'digits' (4 classes: a bright square in one quadrant), grey 0..255."
    for i in range(n):
        k = i % 4
        img = RNG.integers(0, 40, (size, size), dtype=np.uint8)
        r, c = divmod(k, 2)
        img[r * size // 2:(r + 1) * size // 2, c * size // 2:(c + 1) * size // 2] += 200
        (root / f'class{k}').mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f'class{k}' / f'{i:03d}.png')
    return root


def test_config_of_own_data_is_checked_before_anything_is_written(tmp_path):
    "Images the models cannot take, and a folder that is no dataset, are refused by make_config (so by hit_train)."
    digits_folder(tmp_path / 'd30', n=8, size=30)
    with pytest.raises(ConfigError, match=r"images of shape \(1, 30, 30\).*16, 20, 24, 28, 32, 48, 64"):
        make_config(dataset=str(tmp_path / 'd30'))
    r = run([str(BIN / 'hit_train'), '--dataset', str(tmp_path / 'd30'), '--out_dir', str(tmp_path / 'run'), '--quiet'])
    assert r.returncode == 2 and 'pad or resize' in r.stderr and not (tmp_path / 'run').exists()
    (tmp_path / 'empty').mkdir()
    r = run([str(BIN / 'hit_train'), '--dataset', str(tmp_path / 'empty'), '--out_dir', str(tmp_path / 'run'), '--quiet'])
    assert r.returncode == 2 and 'holds no images' in r.stderr and not (tmp_path / 'run').exists()
    cfg = make_config(dataset=str(digits_folder(tmp_path / 'd16', n=8)))
    assert (cfg['dataset'], cfg['likelihood'], cfg['sigma_x'], cfg['epochs']) == (str((tmp_path / 'd16').resolve()),
                                                                                   None, 0.71, 30)
    assert Path(cfg['out_dir']).name.startswith('d16-ghvae-b2_1-b1_1-e30')
    assert make_config(dataset=str(tmp_path / 'd16'), likelihood='bernoulli')['sigma_x'] is None


def test_labelled_folder_trains_resumes_and_evaluates(tmp_path, monkeypatch):
    """A labelled image folder: trained (2 epochs) equal to a run killed after epoch 1 and resumed, then evaluated with
    its own IS classifier (small_cnn, trained where the default lives) and every label metric."""
    from conftest import crash_after
    data = str(digits_folder(tmp_path / 'quadrants'))
    m = train(dataset=data, out_dir=tmp_path / 'a', progress=False, **TINY_OWN)
    with pytest.raises(KeyboardInterrupt):
        train(dataset=data, out_dir=tmp_path / 'b', progress=False, callbacks=[crash_after(1)], **TINY_OWN)
    m2 = train(dataset=data, out_dir=tmp_path / 'b', progress=False, **TINY_OWN)
    assert [h['loss'] for h in m['history']] == [h['loss'] for h in m2['history']]
    monkeypatch.setenv('HIT_NB_DATA', str(tmp_path / 'data'))        # the default classifier goes there
    e = evaluate_run(tmp_path / 'a', n_samples=100, progress=False)
    ck = torch.load(e['classifier'], weights_only=True)
    assert (ck['arch'], ck['arch_kwargs'], ck['dataset']) == ('small_cnn', dict(shape=[1, 16, 16], n_classes=4), data)
    assert Path(e['classifier']).parent == tmp_path / 'data' / 'classifiers'
    for k in ('is', 'mi_z2', 'acc_rbfsvm_mu2', 'acc_bound_z2', 'classifier_accuracy'): assert np.isfinite(e[k]), k
    assert 'skipped' not in e


def test_unlabelled_npz_evaluates_without_label_metrics(tmp_path):
    "No labels: the probes, I_q(y; z), Meyen's bound and the IS are skipped and said to be; a classifier is refused."
    x = RNG.integers(0, 256, (40, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / 'faces.npz', x_train=x[:32], x_test=x[32:])
    train(dataset=str(tmp_path / 'faces.npz'), out_dir=tmp_path / 'r', progress=False, **TINY_OWN)
    e = evaluate_run(tmp_path / 'r', n_samples=100, progress=False)
    assert e['skipped'] == "probes, I_q(y; z), Meyen's bound, Inception Score: the dataset has no labels"
    assert not any(k in e for k in ('is', 'mi_z2', 'acc_rbfsvm_mu2', 'acc_bound_z2', 'classifier_accuracy'))
    assert e['classifier'] is None and np.isfinite(e['psnr'])
    with pytest.raises(ConfigError, match='has no labels'):
        evaluate_run(tmp_path / 'r', classifier=tmp_path / 'any.pt', n_samples=100, progress=False)


class TwoMLP(HVAE):
    "A two-layer MLP HVAE, as a user would write one (02_models, 'Your own model')."
    def __init__(self, shape, n_layers=2, likelihood='bernoulli', sigma_x=None, top_dim=3, z1_dim=5, bad=False):
        super().__init__()
        self.shape, self.n_layers, self.likelihood, self.top_dim, self.bad = tuple(shape), n_layers, likelihood, top_dim, bad
        if likelihood == 'gaussian': self.register_buffer('sigma_x', torch.tensor(float(sigma_x)))
        else: self.sigma_x = None
        n = int(np.prod(shape))
        self.q2, self.q1 = torch.nn.Linear(n, 2 * top_dim), torch.nn.Linear(n + top_dim, 2 * z1_dim)
        self.p1, self.dec = torch.nn.Linear(top_dim, 2 * z1_dim), torch.nn.Linear(z1_dim, n)
    def infer(self, x, generator=None, sample=True):
        q2 = gauss_params(self.q2(x.flatten(1)))
        z2 = q2[0] + q2[1] * randn_like(q2[0], generator) if sample else q2[0]
        q1 = gauss_params(self.q1(torch.cat([x.flatten(1), z2], 1)))
        z1 = q1[0] + q1[1] * randn_like(q1[0], generator) if sample else q1[0]
        p = [None] if self.bad else [None, self.prior_params(0, z2)]
        return [z2, z1], [q2, q1], p
    def prior_params(self, i, z_above): return gauss_params(self.p1(z_above))
    def decode(self, z1): return self.dec(z1).view(-1, *self.shape)


def test_own_model_registered_and_by_import_path(tmp_path, monkeypatch):
    """A registered model trains and evaluates in this process; by its import path it trains through hit_train in
    another process; one that breaks the contract is refused at the first batch, before the run starts."""
    data = str(digits_folder(tmp_path / 'q'))
    monkeypatch.setenv('HIT_NB_DATA', str(tmp_path / 'data'))
    register_model('two_mlp', TwoMLP)
    m = train(dataset=data, model='two_mlp', out_dir=tmp_path / 'a', progress=False, **TINY_OWN)
    assert m['status'] == 'done' and m['n_params'] == sum(p.numel() for p in TwoMLP((1, 16, 16)).parameters())
    e = evaluate_run(tmp_path / 'a', n_samples=100, progress=False)
    assert np.isfinite(e['is']) and np.isfinite(e['acc_rbfsvm_mu2'])
    register_model('broken', lambda **kw: TwoMLP(**kw, bad=True))
    with pytest.raises(ConfigError, match=r"model='broken': forward's p has 1 entries, not one per layer"):
        train(dataset=data, model='broken', out_dir=tmp_path / 'b', progress=False, **TINY_OWN)
    assert not (tmp_path / 'b' / 'config.json').exists()
    (tmp_path / 'mymod.py').write_text(f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                                      "from test_own_data import TwoMLP\n")
    r = run([str(BIN / 'hit_train'), '--dataset', data, '--model', 'mymod:TwoMLP', '--epochs', '2', '--batch_size', '16',
             '--out_dir', str(tmp_path / 'c'), '--threads', '1', '--no-tensorboard', '--quiet'],
            env_extra=dict(PYTHONPATH=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)                       # the same run in another process: the same numbers
    assert (out['model'], out['rate_z2'], out['psnr']) == ('mymod:TwoMLP', m['rate_z2'], m['psnr'])
