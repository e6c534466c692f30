"""Stand-in papermill notebooks for tests of the sweep machinery: the real notebooks' parameters cells, bodies that
write a finished run's files at once instead of training. Used by tests/ and by the inline tests of the notebooks
18b_tasks and 19_sweep (which put this folder on sys.path)."""
from pathlib import Path
from hit_nb.notebooks import notebook_folder

# training writes config.json, metrics.json and DONE (and fails for seed 13, to have a failing point); evaluation marks
# the run evaluated with the settings it was given and a fake probe accuracy of threads / 4 (so a test can see the
# threads a run got); the ensemble's training does for each member what the training does; the classifier's training
# writes its file with the settings it was given
STAND_INS = dict(
    train="""import time
from hit_nb.config import make_config, TRAIN_PARAMS
from hit_nb.run_dir import RunDir
assert seed != 13, 'seed 13 fails'
time.sleep(0.2)
run = RunDir(out_dir)
run.start(make_config(**{k: globals()[k] for k in TRAIN_PARAMS}))
run.finish(dict(status='done', threads=threads))""",
    evaluate="""from hit_nb.evaluate import eval_settings
from hit_nb.classifiers import classifier_path
from hit_nb.run_dir import RunDir
run = RunDir(run_dir)
m, cfg = run.metrics, run.config
clf = classifier if classifier is not None else classifier_path(cfg['dataset'], root if root is not None else cfg['root'])
m.update(evaluated=True, n_samples=n_samples, acc_knn_mu2=m['threads'] / 4,
         **eval_settings(n_samples, seed=seed, classifier=clf))
run.record_evaluation(m)""",
    train_ensemble="""from hit_nb.config import make_config
from hit_nb.run_dir import RunDir
from hit_nb.tasks import read_members
ms = read_members(members)
assert all(p['seed'] != 13 for p in ms), 'seed 13 fails'
for p in ms:
    run = RunDir(p['out_dir'])
    run.start(make_config(**p))
    run.finish(dict(status='done', threads=p.get('threads', 1)))""",
    train_classifier="""import json
from pathlib import Path
Path(out).write_text(json.dumps(dict(dataset=dataset, device=device, threads=threads)))""")


def stand_in_notebooks(folder,           # the folder to write them into (created)
                       bodies:dict=None, # {notebook name: code that replaces all after its parameters cell}; STAND_INS
                      ) -> Path:
    "A notebooks folder: the real papermill notebooks' parameters cells with stand-in bodies (sweeps without training)."
    import nbformat
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in (STAND_INS if bodies is None else bodies).items():
        nb = nbformat.read(notebook_folder()/f'{name}.ipynb', as_version=4)
        params = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
        nb.cells = params + [nbformat.v4.new_code_cell(body)]
        nbformat.write(nb, folder/f'{name}.ipynb')
    return folder
