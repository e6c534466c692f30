"""Every papermill notebook refuses a parameter it does not have (papermill itself only warns and runs the defaults),
on the command line and in the kept kernels of hit_nb.notebooks.execute_notebook, before anything is written."""
import ast, json, shutil
from pathlib import Path
import nbformat, papermill, psutil, pytest
from conftest import ROOT, BIN, TINY, run
from hit_nb.config import TRAIN_PARAMS

NOTEBOOKS = sorted([*(ROOT/'nbs').glob('*.ipynb'), *(ROOT/'nbs'/'figures').glob('*.ipynb')])

def parameters_index(nb) -> int|None:
    "Index of the cell tagged `parameters`, or None."
    tagged = [i for i, c in enumerate(nb.cells) if 'parameters' in c.metadata.get('tags', [])]
    assert len(tagged) <= 1
    return tagged[0] if tagged else None

PAPERMILL_NOTEBOOKS = [p for p in NOTEBOOKS if parameters_index(nbformat.read(p, as_version=4)) is not None]

def check_cells(path):
    "The cell before the parameters cell takes the snapshot (untagged); the first after it checks, with its own names."
    nb = nbformat.read(path, as_version=4)
    i = parameters_index(nb)
    snap, check = nb.cells[i - 1], nb.cells[i + 1]
    assert snap.cell_type == 'code' and not snap.metadata.get('tags'), path.name
    assert '_names_before = notebook_names(globals())' in snap.source, path.name
    call = ast.parse(check.source).body[0].value
    assert isinstance(call, ast.Call) and getattr(call.func, 'id', None) == 'check_parameters', path.name
    assert [ast.unparse(a) for a in call.args[:2]] == ['globals()', '_names_before'], path.name
    assert call.args[2].value == str(path.relative_to(ROOT)), path.name       # the path its error message gives
    names = TRAIN_PARAMS if ast.unparse(call.args[3]) == 'TRAIN_PARAMS' else ast.literal_eval(call.args[3])
    assert list(names) == list(papermill.inspect_notebook(str(path))), path.name   # the parameters cell's own names

def test_every_papermill_notebook_checks_its_parameters():
    names = {str(p.relative_to(ROOT/'nbs')) for p in PAPERMILL_NOTEBOOKS}
    assert {'train.ipynb', 'train_ensemble.ipynb', 'evaluate.ipynb', 'train_classifier.ipynb',
            'figures/fig3_rate_distortion.ipynb', 'figures/rate_targets.ipynb', 'figures/table1.ipynb',
            'figures/atlas_vs_grid.ipynb'} <= names
    assert len(names) == 13 and not any(n[:2].isdigit() for n in names)      # no library notebook has parameters
    for path in PAPERMILL_NOTEBOOKS: check_cells(path)

def papermill_cli(nb, out, params, cwd):
    args = [str(BIN/'papermill'), str(nb), str(out)]
    for k, v in params.items(): args += ['-p', k, str(v)]
    return run(args, cwd=cwd, timeout=300)

def first_error(path) -> dict:
    "The first error output of an executed notebook."
    nb = json.loads(Path(path).read_text())
    return next(o for c in nb['cells'] for o in c.get('outputs', []) if o.get('output_type') == 'error')

# notebook, parameters with one misspelt name (D: a folder that must not be created), the name, the parameter hinted
REFUSED = [('train.ipynb', dict(beta_2=0.1, epochs=1, out_dir='D'), 'beta_2', 'beta2'),
           ('evaluate.ipynb', dict(n_sample=5, run_dir='D'), 'n_sample', 'n_samples'),
           ('train_ensemble.ipynb', dict(member='D/m.json', sweep_dir='D'), 'member', 'members'),
           ('train_classifier.ipynb', dict(epoch=1, out='D/clf.pt'), 'epoch', 'epochs'),
           ('figures/fig3_rate_distortion.ipynb', dict(result='D/results.csv', outdir='D'), 'result', 'results')]

@pytest.mark.parametrize('nb,params,bad,hint', REFUSED, ids=[r[0] for r in REFUSED])
def test_papermill_refuses_unknown_parameter(tmp_path, nb, params, bad, hint):
    params = {k: str(tmp_path/v) if 'D' in str(v) else v for k, v in params.items()}
    r = papermill_cli(ROOT/'nbs'/nb, tmp_path/'o.ipynb', params, cwd=tmp_path)
    assert r.returncode != 0
    msg = f"{Path(nb).name} has no parameter '{bad}' (did you mean {hint}?): its parameters are "
    assert msg in r.stderr and f'see papermill --help-notebook nbs/{nb}' in r.stderr, r.stderr[-3000:]
    err = first_error(tmp_path/'o.ipynb')
    assert err['ename'] == 'ConfigError' and msg in err['evalue']
    assert not (tmp_path/'D').exists()                                          # nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ['o.ipynb']

def test_kept_kernel_refuses_and_forgets(tiny_done, tmp_path):
    "In one kept kernel: two good train.ipynb runs, then a refused one (also a name the previous notebook defined)."
    from hit_nb.kernels import WarmKernels
    from hit_nb.notebooks import execute_notebook
    done = tmp_path/'run'; shutil.copytree(tiny_done[0], done)                 # finished: train.ipynb only reports it
    good = dict(TINY, out_dir=str(done))
    pool = WarmKernels()
    def train_nb(i, params): return execute_notebook(ROOT/'nbs'/'train.ipynb', tmp_path/f'{i}.ipynb', params,
                                                     cwd=tmp_path, kernels=pool)
    try:
        r1 = train_nb(1, good)
        assert r1['rc'] == 0, r1['reason']
        assert len(pool) == 1; pid = pool.idle[()][0].pid
        r2 = train_nb(2, good)                                                  # the first one's snapshot is gone
        assert r2['rc'] == 0, r2['reason']
        assert len(pool) == 1 and pool.idle[()][0].pid == pid                   # in the same kernel
        bad = tmp_path/'D'
        r3 = train_nb(3, dict(beta_2=0.1, metrics=1, epochs=1, out_dir=str(bad)))   # metrics: set by run 2's body
        assert r3['rc'] == 1 and r3['reason'].startswith(
            "ConfigError: train.ipynb has no parameters 'beta_2' (did you mean beta2?), 'metrics': its parameters are "
            "dataset, model, beta2, beta1,"), r3['reason']
        assert not bad.exists()
        assert len(pool) == 0 and (not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
        r4 = train_nb(4, good)                                                  # a good one after it: not refused
        assert r4['rc'] == 0, r4['reason']
        assert json.loads((done/'metrics.json').read_text())['status'] == 'done'
    finally: pool.close()
