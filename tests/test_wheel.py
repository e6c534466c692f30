"""hit_nb as its users install it: a wheel built from this checkout, installed into a fresh virtual environment outside
the clone, used from an empty folder with a fresh data folder (no classifier, no notebooks anywhere but the wheel's).

One module fixture builds the wheel and the environment (tests/wheel_env.py: about a minute, pip installs torch and the
rest from its cache; .ci/run builds it beforehand, beside the project's venv); the tests then run the README's
commands in that environment, each in a folder of its own.
"""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from conftest import ROOT
from wheel_env import build, complete


def sh(args, cwd, env, timeout=900):
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def wheel_env(tmp_path_factory):
    "(bin folder, environment) of a fresh venv with only the built wheel (and its requirements) installed."
    base = tmp_path_factory.mktemp('wheel')
    given = os.environ.get('HIT_NB_WHEEL_ENV')
    bin_ = Path(given)/'venv'/'bin' if complete(given) else build(base/'env')       # .ci/run builds it beforehand
    env = {k: v for k, v in os.environ.items() if k not in ('MPLBACKEND', 'PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', HIT_NB_DATA=str(base/'data'))
    env.pop('HIT_NB_NOTEBOOKS', None)
    env['PATH'] = f"{bin_}{os.pathsep}{env['PATH']}"
    return bin_, env


def folder(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    return d


def test_installed_package_carries_its_notebooks(wheel_env, tmp_path):
    "The installed hit_nb is the wheel's (not this clone), and finds its papermill and figure notebooks inside itself."
    bin_, env = wheel_env
    code = ("import hit_nb; from hit_nb.notebooks import notebook_folder as f; "
            "print(hit_nb.__file__); print(f()); print(f(kind='figures'))")
    r = sh([bin_ / 'python', '-c', code], cwd=folder(tmp_path, 'empty'), env=env)
    assert r.returncode == 0, r.stderr
    pkg, nbs, figs = r.stdout.split()
    assert Path(nbs) == Path(pkg).parent / 'nbs'
    assert 'site-packages' in pkg and str(ROOT) not in pkg
    assert Path(figs) == Path(nbs) / 'figures'
    assert {p.name for p in Path(nbs).glob('*.ipynb')} == {'train.ipynb', 'evaluate.ipynb', 'train_ensemble.ipynb',
                                                           'train_classifier.ipynb'}
    assert {p.stem for p in Path(figs).glob('*.ipynb')} == {p.stem for p in (ROOT / 'nbs' / 'figures').glob('*.ipynb')}


def test_train_evaluate_sweep_from_an_empty_folder(wheel_env, tmp_path):
    """The README's commands with nothing but the wheel: hit_train, hit_evaluate (which trains the missing default IS
    classifier, saying so, where a sweep would), hit_sweep on two grid points; hit_figures refusing a missing table
    (it draws every figure from the wheel's notebooks in the next test)."""
    bin_, env = wheel_env
    work = folder(tmp_path, 'work')
    r = sh(['hit_train', '--dataset', 'mnist5k', '--epochs', '1', '--batch_size', '500', '--out_dir', 'run',
            '--threads', '1', '--quiet'], cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert (work / 'run' / 'DONE').exists()
    clf = Path(env['HIT_NB_DATA']) / 'classifiers' / 'mnist5k.pt'
    assert not clf.exists()
    r = sh(['hit_evaluate', 'run', '--n_samples', '200'], cwd=work, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert clf.is_file()                                              # trained where the default lives
    rec = (work / 'run' / 'evaluate.ipynb').read_text()
    assert f'no IS classifier for mnist5k at {clf}: training the default one there' in rec
    m = json.loads((work / 'run' / 'metrics.json').read_text())
    assert m['evaluated'] and m['classifier'] == str(clf) and m['eval_n_samples'] == 200
    assert 'hit_evaluate: done:' in r.stdout
    # a named classifier that does not exist stays an error, before anything runs, and nothing is trained for it
    before = (work / 'run' / 'evaluate.ipynb').read_bytes()
    r = sh(['hit_evaluate', 'run', '--n_samples', '200', '--classifier', 'typo.pt'], cwd=work, env=env)
    assert r.returncode == 2 and 'no classifier file' in r.stderr and not (work / 'typo.pt').exists()
    assert (work / 'run' / 'evaluate.ipynb').read_bytes() == before
    # a run directory that holds no training
    r = sh(['hit_evaluate', 'nothing_here'], cwd=work, env=env)
    assert r.returncode == 2 and 'no finished training' in r.stderr

    r = sh(['hit_sweep', '--grid', '0.1,1x1', '--dataset', 'mnist5k', '--epochs', '1', '--batch_size', '500',
            '--n_samples', '200', '--sweep_dir', 's', '--workers', '2', '--quiet'], cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(work / 's' / 'results.csv')
    assert len(df) == 2 and set(df['status']) == {'done'}
    r = sh(['hit_figures', 'nope.csv'], cwd=work, env=env)
    assert r.returncode == 2 and 'not found' in r.stderr


def test_own_images_and_model_from_an_empty_folder(wheel_env, tmp_path):
    """With nothing but the wheel: a labelled image folder through hit_sweep and hit_figures; an unlabelled .npz through
    hit_train and hit_evaluate (label metrics skipped, said to be); a model of one's own by its import path."""
    import numpy as np
    from PIL import Image
    bin_, env = wheel_env
    work = folder(tmp_path, 'work')
    rng = np.random.default_rng(0)
    for i in range(48):                                  # 4 classes: a bright quadrant each, 16x16 grey
        img = rng.integers(0, 40, (16, 16), dtype=np.uint8)
        r, c = divmod(i % 4, 2)
        img[8 * r:8 * r + 8, 8 * c:8 * c + 8] += 200
        (work / 'quads' / f'c{i % 4}').mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(work / 'quads' / f'c{i % 4}' / f'{i:02d}.png')
    r = sh(['hit_sweep', '--grid', '0.1,1x1', '--dataset', 'quads', '--epochs', '1', '--batch_size', '16',
            '--n_samples', '100', '--sweep_dir', 's', '--workers', '2', '--quiet'], cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(work / 's' / 'results.csv')
    assert len(df) == 2 and set(df['status']) == {'done'} and set(df['dataset']) == {str(work / 'quads')}
    assert df['is'].notna().all() and df['acc_rbfsvm_mu2'].notna().all()
    assert len(list((Path(env['HIT_NB_DATA']) / 'classifiers').glob('quads-*.pt'))) == 1     # small_cnn, trained once
    r = sh(['hit_figures', 's/results.csv', '--outdir', 'figs'], cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ('fig1_landscape', 'fig3_rate_distortion', 'fig4_samples', 'fig5_generation', 'fig6_accuracy_vs_rate',
              'fig7_information'):
        assert (work / 'figs' / f'{f}.png').stat().st_size > 1000 and (work / 'figs' / f'{f}.pdf').is_file()
    assert (work / 'figs' / 'table1.md').is_file()

    x = rng.integers(0, 256, (40, 16, 16), dtype=np.uint8)
    np.savez(work / 'faces.npz', x_train=x[:32], x_test=x[32:])
    (work / 'mymodels.py').write_text(
        "import torch\nfrom hit_nb.models import GHVAE\n"
        "class Small(GHVAE):\n"
        "    def __init__(self, shape, n_layers, likelihood, sigma_x):\n"
        "        super().__init__(shape, c=4, top_dim=3, n_layers=n_layers, likelihood=likelihood, sigma_x=sigma_x)\n")
    env_model = dict(env, PYTHONPATH=str(work))
    r = sh(['hit_train', '--dataset', 'faces.npz', '--model', 'mymodels:Small', '--epochs', '1', '--batch_size', '16',
            '--out_dir', 'run', '--quiet'], cwd=work, env=env_model)
    assert r.returncode == 0, r.stderr[-3000:]
    r = sh(['hit_evaluate', 'run', '--n_samples', '100'], cwd=work, env=env_model)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((work / 'run' / 'metrics.json').read_text())
    assert m['model'] == 'mymodels:Small' and m['skipped'].endswith('the dataset has no labels') and 'is' not in m
    assert "skipped probes, I_q(y; z), Meyen's bound, Inception Score" in (work / 'run' / 'evaluate.ipynb').read_text()
