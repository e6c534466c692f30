"""Dataset files that are present but unreadable or inconsistent are bad input: `hit_train` exits with 2 and one line
`hit_train: error: ...` that names the file, with no traceback and nothing written.

The broken files are made in torchvision's own formats (MNIST idx files, SVHN `.mat`, CIFAR-10 pickles) under a
temporary root. SVHN and CIFAR-10 files are md5-checked by torchvision before they are read, so a fake file fails
there; to reach the reading and the shape checks behind it, some cases run hit_train through a small script that turns
torchvision's md5 check off first (the files here are ours, not the published ones)."""
import pickle, struct
import numpy as np, pytest, scipy.io
from conftest import BIN, run

RNG = np.random.default_rng(0)

def write_idx(raw, split, n_img=3, n_lab=3, size=28, label=1, cut_img=0, cut_lab=0, garbage=False):
    "MNIST idx files of one split (uncompressed, big-endian headers), cut short by `cut_*` bytes if asked."
    raw.mkdir(parents=True, exist_ok=True)
    img = struct.pack('>iiii', 2051, n_img, size, size) + RNG.integers(0, 256, n_img * size * size, np.uint8).tobytes()
    lab = struct.pack('>ii', 2049, n_lab) + bytes([label]) * n_lab
    (raw/f'{split}-images-idx3-ubyte').write_bytes(b'garbage, not idx' if garbage else img[:len(img) - cut_img])
    (raw/f'{split}-labels-idx1-ubyte').write_bytes(lab[:len(lab) - cut_lab])

def write_svhn(path, n=4, n_labels=None, shape=(32, 32, 3)):
    "An SVHN .mat file: X (32, 32, 3, N) uint8, y (N, 1) in 1..10, or of the given other shape and label count."
    X = RNG.integers(0, 256, size=(*shape, n), dtype=np.uint8)
    y = RNG.integers(1, 11, size=(n if n_labels is None else n_labels, 1)).astype(np.uint8)
    scipy.io.savemat(str(path), {'X': X, 'y': y})

def write_cifar(folder, n=2, n_labels=None):
    "CIFAR-10's pickled batches and batches.meta, each batch of n images and n_labels labels."
    folder.mkdir(parents=True)
    for f in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        labels = [int(v) for v in RNG.integers(0, 10, n if n_labels is None else n_labels)]
        batch = {'data': RNG.integers(0, 256, (n, 3072), dtype=np.uint8), 'labels': labels}
        (folder/f).write_bytes(pickle.dumps(batch, protocol=2))
    (folder/'batches.meta').write_bytes(pickle.dumps({'label_names': [f'c{i}' for i in range(10)]}, protocol=2))

NO_MD5 = """import sys
import hit_nb.data                                               # makes torchvision importable (torchvision_compat)
import torchvision.datasets.utils as u, torchvision.datasets.svhn as s, torchvision.datasets.cifar as c
u.check_integrity = s.check_integrity = c.check_integrity = lambda *a, **k: True
from hit_nb.train import hit_train
hit_train()
"""

def mnist(kw_train):
    def make(root):
        raw = root/'MNIST'/'raw'
        write_idx(raw, 't10k'); write_idx(raw, 'train', **kw_train)
        return raw
    return make

def svhn(**kw):
    def make(root):
        write_svhn(root/'test_32x32.mat')
        write_svhn(root/'train_32x32.mat', **kw)
        return root
    return make

def garbage_svhn(root):
    for f in ('train_32x32.mat', 'test_32x32.mat'): (root/f).write_bytes(b'MATLAB 5.0? no: garbage')
    return root

def garbage_cifar(root):
    folder = root/'cifar-10-batches-py'; write_cifar(folder)
    (folder/'data_batch_3').write_bytes(b'garbage, not a pickle')
    return folder

def cifar(**kw):
    def make(root):
        write_cifar(root/'cifar-10-batches-py', **kw); return root/'cifar-10-batches-py'
    return make

# dataset, what makes the broken files (returns their folder), md5 check off, the files the error must name, and a
# phrase of it
CASES = {
    'mnist-truncated-images': ('mnist', mnist(dict(cut_img=7)), False, ['train-images-idx3-ubyte'], 'cannot be read'),
    'mnist-count-mismatch': ('mnist', mnist(dict(n_lab=2)), False,
                             ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'], 'hold 3 images but 2 labels'),
    'mnist-wrong-size': ('mnist', mnist(dict(size=32)), False, ['train-images-idx3-ubyte'],
                         'holds uint8 images of shape (1, 32, 32), not uint8 (1, 28, 28)'),
    'mnist-label-range': ('mnist', mnist(dict(label=12)), False, ['train-labels-idx1-ubyte'],
                          'holds labels from 12 to 12, not 0..9'),
    'svhn-garbage-md5': ('svhn', garbage_svhn, False, ['train_32x32.mat', 'test_32x32.mat'],
                         "failed torchvision's md5 check"),
    'cifar10-garbage-md5': ('cifar10', garbage_cifar, False,
                            [*(f'data_batch_{i}' for i in range(1, 6)), 'test_batch', 'batches.meta'],
                            "failed torchvision's md5 check"),
    'svhn-garbage': ('svhn', garbage_svhn, True, ['train_32x32.mat'], 'cannot be read'),
    'svhn-X-wrong-shape': ('svhn', svhn(shape=(28, 28, 3)), True, ['train_32x32.mat'],
                           'holds uint8 images of shape (3, 28, 28), not uint8 (3, 32, 32)'),
}
# more of them, through load_dataset in this process (each hit_train costs seconds of start-up)
MORE = {
    'mnist-truncated-labels': ('mnist', mnist(dict(cut_lab=1)), ['train-labels-idx1-ubyte'], 'cannot be read'),
    'mnist-garbage': ('mnist', mnist(dict(garbage=True)), ['train-images-idx3-ubyte'], 'cannot be read (AssertionError)'),
    'svhn-X-3d': ('svhn', svhn(shape=(32, 32)), ['train_32x32.mat'], 'cannot be read (ValueError: axes'),
    'svhn-count-mismatch': ('svhn', svhn(n=4, n_labels=3), ['train_32x32.mat'], 'holds 4 images but 3 labels'),
    'cifar10-count-mismatch': ('cifar10', cifar(n=2, n_labels=3), [f'data_batch_{i}' for i in range(1, 6)],
                               'hold 10 images but 15 labels'),
}

def check_message(err, name, folder, files, phrase):
    assert err.startswith(f"dataset='{name}': "), err
    assert ', '.join(str(folder/f) for f in files) + ' ' in err, err      # every bad file, by its full path
    assert phrase in err, err
    assert 'replace' in err and 'delete' in err and 'download' in err, err   # the fix

@pytest.mark.parametrize('case', list(CASES))
def test_hit_train_unusable_dataset_files(tmp_path, case):
    name, make, no_md5, files, phrase = CASES[case]
    root = tmp_path/'data'; root.mkdir()
    folder = make(root).resolve()
    out = tmp_path/'D'
    args = ['--dataset', name, '--root', str(root), '--epochs', '1', '--out_dir', str(out)]
    if no_md5:
        (tmp_path/'no_md5.py').write_text(NO_MD5)
        cmd = [str(BIN/'python'), str(tmp_path/'no_md5.py'), *args]
    else: cmd = [str(BIN/'hit_train'), *args]
    r = run(cmd, timeout=120, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    errors = [l for l in r.stderr.splitlines() if l.startswith('hit_train: error: ')]
    assert len(errors) == 1, r.stderr
    check_message(errors[0].removeprefix('hit_train: error: '), name, folder, files, phrase)
    assert not out.exists()                                                # nothing written

@pytest.mark.parametrize('case', list(MORE))
def test_load_dataset_unusable_files(tmp_path, monkeypatch, case):
    from hit_nb.core import ConfigError
    from hit_nb.data import load_dataset
    import torchvision.datasets.utils as u, torchvision.datasets.svhn as s, torchvision.datasets.cifar as c
    import torchvision.datasets.mnist as m
    for mod in (u, s, c): monkeypatch.setattr(mod, 'check_integrity', lambda *a, **k: True)
    def no_download(self): raise AssertionError('a download was tried')
    for cls in (m.MNIST, s.SVHN, c.CIFAR10): monkeypatch.setattr(cls, 'download', no_download)
    name, make, files, phrase = MORE[case]
    folder = make(tmp_path).resolve()
    with pytest.raises(ConfigError) as e: load_dataset(name, root=tmp_path)      # download=True: the files are there
    assert '\n' not in str(e.value)
    check_message(str(e.value), name, folder, files, phrase)
