"""hit_nb.data reads the real on-disk formats of SVHN, CIFAR-10 and MNIST exactly.

Each test writes a few images in the dataset's own file format (the layout torchvision reads) into a
temporary folder, loads them with `load_dataset`, and checks every pixel and label. SVHN and CIFAR-10
files carry md5 sums in torchvision; only these tests bypass that check (monkeypatch), because the
files here are ours, not the published ones.
"""
import pickle, struct, urllib.error

import numpy as np
import pytest
import scipy.io
import torch

import hit_nb.data as hd
from hit_nb.data import DATASETS, ImageData, default_root, load_dataset
from hit_nb.core import ConfigError

import torchvision.datasets.cifar as tv_cifar   # importable because hit_nb.data ran torchvision_compat()
import torchvision.datasets.mnist as tv_mnist
import torchvision.datasets.svhn as tv_svhn

torch.set_num_threads(1)
RNG = np.random.default_rng(0)


def _assert_split(d: ImageData, split: str, x_nchw: np.ndarray, y: np.ndarray):
    x, lab = d._split(split)
    assert x.dtype == torch.uint8 and lab.dtype == torch.int64
    assert x.is_contiguous()
    assert torch.equal(x, torch.from_numpy(np.ascontiguousarray(x_nchw)))
    assert lab.tolist() == list(y)


# ------------------------------------------------------------- SVHN: MATLAB .mat, X (32, 32, 3, N), y (N, 1) in 1..10

def _write_svhn(path, n, first_labels=()):
    X = RNG.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)       # X[row, col, channel, image]
    y = RNG.integers(1, 11, size=n).astype(np.uint8)
    y[:len(first_labels)] = first_labels
    scipy.io.savemat(str(path), {'X': X, 'y': y.reshape(n, 1)})
    return X, y


def test_svhn_mat(tmp_path, monkeypatch):
    monkeypatch.setattr(tv_svhn.SVHN, '_check_integrity', lambda self: True)
    Xtr, ytr = _write_svhn(tmp_path / 'train_32x32.mat', 7, first_labels=(10, 1, 10, 9))
    Xte, yte = _write_svhn(tmp_path / 'test_32x32.mat', 5, first_labels=(5, 10))
    Xtr[4, 7, 2, 1] = 200; Xtr[7, 4, 2, 1] = 13           # a pixel off the diagonal: rows and columns must not swap
    scipy.io.savemat(str(tmp_path / 'train_32x32.mat'), {'X': Xtr, 'y': ytr.reshape(-1, 1)})

    d = load_dataset('svhn', root=tmp_path, download=False)
    assert (d.name, d.likelihood, d.shape, d.n_classes) == ('svhn', 'gaussian', (3, 32, 32), 10)
    assert d.train_x[1, 2, 4, 7] == 200 and d.train_x[1, 2, 7, 4] == 13   # [image, channel, row, col]
    _assert_split(d, 'train', Xtr.transpose(3, 2, 0, 1), np.where(ytr == 10, 0, ytr))
    _assert_split(d, 'test', Xte.transpose(3, 2, 0, 1), np.where(yte == 10, 0, yte))
    assert d.train_y[:4].tolist() == [0, 1, 0, 9] and d.test_y[:2].tolist() == [5, 0]   # label 10 is the digit 0
    assert d.label_hist('train').sum() == 7
    xb, yb = next(d.batches('test', batch_size=5, shuffle=False))
    assert torch.equal(xb, torch.from_numpy(Xte.transpose(3, 2, 0, 1).astype(np.float32)) / 255)
    assert 0 <= xb.min() and xb.max() <= 1


# ------------------------------------------- CIFAR-10: Python 2 pickles of {'data': uint8 (N, 3072), 'labels': [..]}

class _Py2Str(bytes):
    "A Python 2 `str`, what the published CIFAR-10 pickles hold as keys and class names."


class _Py2Pickler(pickle._Pickler):
    "Writes _Py2Str with the SHORT_BINSTRING opcode, as Python 2's cPickle does (protocol 2)."
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2str(self, obj):
        assert len(obj) < 256
        self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + bytes(obj))
        self.memoize(obj)
    dispatch[_Py2Str] = _save_py2str


def _py2_pickle(obj, path):
    with open(path, 'wb') as f: _Py2Pickler(f, protocol=2).dump(obj)


def _write_cifar_batch(path, n, name):
    data = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)  # 1024 red, 1024 green, 1024 blue; each 32x32 row-major
    labels = [int(v) for v in RNG.integers(0, 10, size=n)]
    _py2_pickle({_Py2Str(b'batch_label'): _Py2Str(name.encode()), _Py2Str(b'labels'): labels,
                 _Py2Str(b'data'): data, _Py2Str(b'filenames'): [_Py2Str(b'img%d.png' % i) for i in range(n)]}, path)
    return data, labels


def test_cifar10_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(tv_cifar, 'check_integrity', lambda *a, **k: True)   # md5 of every batch and of batches.meta
    folder = tmp_path / 'cifar-10-batches-py'; folder.mkdir()
    train = [_write_cifar_batch(folder / f'data_batch_{i}', n, f'training batch {i} of 5')
             for i, n in zip(range(1, 6), (2, 3, 1, 2, 2))]
    test_data, test_labels = _write_cifar_batch(folder / 'test_batch', 3, 'testing batch 1 of 1')
    names = [b'airplane', b'automobile', b'bird', b'cat', b'deer', b'dog', b'frog', b'horse', b'ship', b'truck']
    _py2_pickle({_Py2Str(b'num_cases_per_batch'): 10000, _Py2Str(b'label_names'): [_Py2Str(s) for s in names],
                 _Py2Str(b'num_vis'): 3072}, folder / 'batches.meta')
    with open(folder / 'data_batch_1', 'rb') as f:                          # the file reads like the published one
        assert set(pickle.load(f, encoding='bytes')) == {b'batch_label', b'labels', b'data', b'filenames'}

    d = load_dataset('cifar10', root=tmp_path, download=False)
    assert (d.name, d.likelihood, d.shape) == ('cifar10', 'gaussian', (3, 32, 32))
    data = np.concatenate([b[0] for b in train])                            # batches 1..5 in order
    labels = sum((b[1] for b in train), [])
    _assert_split(d, 'train', data.reshape(-1, 3, 32, 32), labels)
    _assert_split(d, 'test', test_data.reshape(-1, 3, 32, 32), test_labels)
    n, c, h, w = 4, 1, 5, 30                                                # one pixel by the format's own arithmetic
    assert d.train_x[n, c, h, w] == data[n, c * 1024 + h * 32 + w]
    assert len(d.train_y) == 10 and len(d.test_y) == 3


# ---------------------------------------------------------------- MNIST: idx files, big-endian headers, uncompressed

def _write_idx(raw, prefix, images, labels):
    n = len(labels)
    (raw / f'{prefix}-images-idx3-ubyte').write_bytes(struct.pack('>iiii', 2051, n, 28, 28) + images.tobytes())
    (raw / f'{prefix}-labels-idx1-ubyte').write_bytes(struct.pack('>ii', 2049, n) + labels.tobytes())


def test_mnist_idx_binarised(tmp_path):
    raw = tmp_path / 'MNIST' / 'raw'; raw.mkdir(parents=True)
    tr = RNG.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    tr[0, 0, :6] = [0, 1, 127, 128, 129, 255]                               # straddle the threshold
    tr[1, 3, 2], tr[1, 2, 3] = 127, 128
    te = RNG.choice(np.array([126, 127, 128, 129], dtype=np.uint8), size=(4, 28, 28))
    ytr, yte = np.array([5, 0, 4, 1, 9, 2], dtype=np.uint8), np.array([7, 2, 1, 0], dtype=np.uint8)
    _write_idx(raw, 'train', tr, ytr); _write_idx(raw, 't10k', te, yte)

    d = load_dataset('mnist', root=tmp_path, download=False)
    assert (d.name, d.likelihood, d.shape) == ('mnist', 'bernoulli', (1, 28, 28))
    assert d.train_x[0, 0, 0, :6].tolist() == [0, 0, 0, 1, 1, 1]
    assert (d.train_x[1, 0, 3, 2].item(), d.train_x[1, 0, 2, 3].item()) == (0, 1)
    _assert_split(d, 'train', (tr >= 128).astype(np.uint8)[:, None], ytr)
    _assert_split(d, 'test', (te >= 128).astype(np.uint8)[:, None], yte)
    xb, _ = next(d.batches('test', batch_size=4, shuffle=False))
    assert set(xb.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(xb, torch.from_numpy((te >= 128)[:, None].astype(np.float32)))


# ---------------------------------------------------------------- files that are not there

@pytest.mark.parametrize('name', ['svhn', 'cifar10', 'mnist'])
def test_missing_files_error(tmp_path, name):
    sub, files = hd._TV_FILES[name]
    with pytest.raises(FileNotFoundError) as e:
        load_dataset(name, root=tmp_path, download=False)
    msg = str(e.value)
    ways_out = ('root=', '-p root', '$HIT_NB_DATA', "dataset='mnist5k'", 'download=False')
    for s in (f"dataset='{name}'", str((tmp_path / sub).resolve()), *files, *ways_out):
        assert s in msg, s


def test_missing_marks_only_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(tv_svhn.SVHN, '_check_integrity', lambda self: True)
    _write_svhn(tmp_path / 'train_32x32.mat', 2)
    with pytest.raises(FileNotFoundError) as e:
        load_dataset('svhn', root=tmp_path, download=False)
    msg = str(e.value)
    assert '* test_32x32.mat' in msg and '  train_32x32.mat' in msg and '* train_32x32.mat' not in msg


def test_missing_gz_only_mnist(tmp_path):
    raw = tmp_path / 'MNIST' / 'raw'; raw.mkdir(parents=True)
    (raw / 'train-images-idx3-ubyte.gz').write_bytes(b'')       # compressed names are not what torchvision reads
    with pytest.raises(FileNotFoundError, match='gunzip'):
        load_dataset('mnist', root=tmp_path, download=False)


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv('HIT_NB_DATA', str(tmp_path))
    assert default_root() == tmp_path
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_dataset('svhn', download=False)                                 # root=None -> $HIT_NB_DATA


def _offline(*a, **k): raise urllib.error.URLError('no network')

@pytest.mark.parametrize('name,module,fn', [('svhn', tv_svhn, 'download_url'),
                                            ('cifar10', tv_cifar, 'download_and_extract_archive'),
                                            ('mnist', tv_mnist, 'download_and_extract_archive')])
def test_failed_download_is_chained(tmp_path, monkeypatch, name, module, fn):
    monkeypatch.setattr(module, fn, _offline)
    with pytest.raises(FileNotFoundError, match='download failed') as e:
        load_dataset(name, root=tmp_path, download=True)
    cause = e.value.__cause__
    assert isinstance(cause, (urllib.error.URLError, RuntimeError))  # MNIST wraps its mirrors' errors in a RuntimeError
    assert 'no network' in str(cause) or 'no network' in str(getattr(cause, 'reason', ''))
    assert "dataset='mnist5k'" in str(e.value)


def test_corrupt_file_is_reported(tmp_path):
    (tmp_path / 'train_32x32.mat').write_bytes(b'not a mat file')           # present, but fails torchvision's md5 check
    (tmp_path / 'test_32x32.mat').write_bytes(b'not a mat file')
    with pytest.raises(ConfigError, match="test_32x32.mat failed torchvision's md5 check"):   # bad input: exit 2
        load_dataset('svhn', root=tmp_path, download=False)


def test_unknown_name():
    with pytest.raises(ValueError, match="dataset='svhn2' is unknown"):
        load_dataset('svhn2')
    assert DATASETS == ('mnist5k', 'mnist', 'svhn', 'cifar10')
