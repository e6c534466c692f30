"""Figure notebooks end to end: a real 2x2 grid (trained, evaluated) plus a pending run -> results.csv (the library's
results_table) -> render_all -> every PNG/PDF/table."""
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from conftest import ROOT, BIN, run

BETAS = (1.0, 3.16227766)
FIGURES = ['fig1_landscape', 'fig1_landscapes_2d', 'fig3_rate_distortion', 'fig4_samples', 'fig5_generation',
           'fig6_accuracy_vs_rate', 'fig7_information']

@pytest.fixture(scope='module')
def table(tmp_path_factory):
    "A real 2x2 (beta2, beta1) grid on mnist5k, 1 epoch each, evaluated (1-epoch IS classifier), plus one pending run."
    from hit_nb.train import train
    from hit_nb.config import make_config
    from hit_nb.core import write_json
    from hit_nb.evaluate import evaluate_run
    from hit_nb.classifiers import train_classifier
    from hit_nb.results import results_table, write_results
    base = tmp_path_factory.mktemp('figs')
    clf = base/'mnist5k_clf.pt'
    train_classifier('mnist5k', out=clf, epochs=1, progress=False)
    sweep = base/'sweep'
    for b2 in BETAS:
        for b1 in BETAS:
            out = sweep/f'b2_{b2:g}-b1_{b1:g}'
            train(progress=False, out_dir=out, dataset='mnist5k', beta2=b2, beta1=b1, epochs=1, batch_size=500,
                  threads=1)
            evaluate_run(out, classifier=clf, n_samples=500, progress=False)
    pending = sweep/'b2_1-b1_0.316228'; pending.mkdir()             # a run the sweep has not reached: a missing cell
    cfg = make_config(dataset='mnist5k', beta2=1., beta1=0.31622777, epochs=1, batch_size=500, out_dir=pending)
    write_json(pending/'config.json', cfg)
    df = results_table(sweep)                                        # as a sweep writes it: run_dir relative to the CSV
    assert (df.status == 'done').sum() == 4 and (df.status == 'pending').sum() == 1
    return write_results(df, sweep/'results.csv')

def not_blank(png:Path):
    g = np.asarray(Image.open(png).convert('L'), dtype=float)
    return g.shape[0] > 300 and g.shape[1] > 300 and g.std() > 15 and (g < 128).mean() > 0.005

def test_render_all(table, tmp_path):
    from hit_nb.figures import render_all, FIGURE_NOTEBOOKS
    out = tmp_path/'figures'
    done = render_all(table, out, prefix='t_', workers=2)
    assert sorted(done) == sorted(FIGURE_NOTEBOOKS)
    for name in FIGURES:
        png, pdf = out/f't_{name}.png', out/f't_{name}.pdf'
        assert png.stat().st_size > 20_000 and not_blank(png), name
        assert pdf.stat().st_size > 5_000 and pdf.read_bytes()[:5] == b'%PDF-', name
    t = pd.read_csv(out/'t_table1.csv', index_col=0)
    assert list(t.index) == ['μ2', 'μ1'] and list(t.columns[:4]) == ['log. reg.', 'lin. SVM', 'RBF SVM', 'kNN']
    df = pd.read_csv(table)
    best = df.loc[df.acc_rbfsvm_mu2.idxmax()]
    assert t.loc['μ2', 'RBF SVM'] == pytest.approx(100 * best.acc_rbfsvm_mu2, abs=1e-9)
    assert (t.loc['μ2', 'RBF SVM β2'], t.loc['μ2', 'RBF SVM β1']) == (best.beta2, best.beta1)   # where the best run sits
    assert '| μ1 |' in (out/'t_table1.md').read_text()
    for name in FIGURE_NOTEBOOKS:
        nb = json.loads((out/'notebooks'/f't_{name}.ipynb').read_text())
        outs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
        if name != 'table1': assert sum('image/png' in o.get('data', {}) for o in outs) >= 1, name   # shows its figure
    nb = (out/'notebooks'/'t_fig3_rate_distortion.ipynb').read_text()
    assert '4 of 5 runs' in nb                                    # the pending run is left out and said so
    assert not list(out.rglob('.*'))                              # no half-written files, figures or notebooks

def test_figure_notebook_without_results_fails_clearly(tmp_path):
    r = run([str(BIN/'papermill'), str(ROOT/'nbs'/'figures'/'fig3_rate_distortion.ipynb'), str(tmp_path/'o.ipynb'),
             '-p', 'results', str(tmp_path/'nope.csv'), '-p', 'outdir', str(tmp_path)], cwd=tmp_path)
    assert r.returncode != 0
    assert 'results table' in (tmp_path/'o.ipynb').read_text() and 'not found' in (tmp_path/'o.ipynb').read_text()
    assert not list(tmp_path.glob('*.png'))

def test_render_all_bad_input(table, tmp_path):
    from hit_nb.figures import render_all
    with pytest.raises(FileNotFoundError, match='results table'): render_all(tmp_path/'none.csv', tmp_path)
    with pytest.raises(ValueError, match="model='lvae' is not in"): render_all(table, tmp_path, model='lvae')
    assert not (tmp_path/'notebooks').exists()

def test_atlas_vs_grid(table, tmp_path):
    "render_all(atlas=...): a tiny atlas evaluated at the grid's points, set against the grid, figure and goals."
    from hit_nb.train import train
    from hit_nb.atlas_eval import evaluate_atlas
    from hit_nb.figures import render_all
    from hit_nb.atlas_compare import compare_points
    from hit_nb.results import load_results
    run_dir = tmp_path/'atlas'
    train(progress=False, out_dir=run_dir, dataset='mnist5k', atlas=True, epochs=1, batch_size=500, threads=1)
    clf = Path(table).parents[1]/'mnist5k_clf.pt'
    evaluate_atlas(run_dir, [[b2, b1] for b2 in BETAS for b1 in BETAS], classifier=clf, n_samples=500, progress=False)
    points = run_dir/'points'/'results.csv'
    cmp = compare_points(load_results(table), load_results(points))
    assert len(cmp) == 4 and cmp.attrs == dict(only_grid=0, only_atlas=0)
    grid = load_results(table).sort_values(['beta2', 'beta1']).reset_index(drop=True)   # the grid's own values
    assert np.allclose(cmp.psnr_grid, grid.psnr) and np.allclose(cmp.rate_z2_grid, grid.rate_z2)
    out = tmp_path/'figures'
    done = render_all(table, out, prefix='t_', notebooks=(), atlas=points)
    assert list(done) == ['atlas_vs_grid']
    png = out/'t_atlas_vs_grid.png'
    assert png.stat().st_size > 20_000 and not_blank(png)
    text = (out/'notebooks'/'t_atlas_vs_grid.ipynb').read_text()
    assert '4 points in both tables' in text and 'training compute: the atlas took' in text
    from hit_nb.atlas_eval import evaluate_plane                          # a finer plane than the grid: 3 x 3
    mid = float(np.sqrt(BETAS[0] * BETAS[1]))
    plane = evaluate_plane(run_dir, [[b2, b1] for b2 in (BETAS[0], mid, BETAS[1]) for b1 in (BETAS[0], mid, BETAS[1])],
                           classifier=clf, n_samples=500, workers=1, progress=False)   # 2: tests/test_atlas.py
    assert len(plane) == 9 and np.allclose(compare_points(load_results(points), plane).psnr_diff, 0)
    done = render_all(table, out, prefix='p_', notebooks=(), atlas=run_dir/'plane'/'results.csv')
    for name in ('p_atlas_vs_grid', 'p_atlas_plane', 'p_atlas_plane_landscapes'): assert not_blank(out/f'{name}.png')
    assert '4 points in both tables (0 only in the grid, 5 only in the atlas)' in \
        (out/'notebooks'/'p_atlas_vs_grid.ipynb').read_text()
    done = render_all(points, out, prefix='a_', notebooks=('fig3_rate_distortion', 'fig4_samples'))   # a paper figure
    assert sorted(done) == ['fig3_rate_distortion', 'fig4_samples'] and not_blank(out/'a_fig4_samples.png')  # of the
    assert 'of one rate atlas' in (out/'notebooks'/'a_fig3_rate_distortion.ipynb').read_text()  # atlas, as of a grid
