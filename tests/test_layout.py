"The shape of the library: reading order is dependency order, the table/figure modules need no torch, the repository stands alone."
import ast, re, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT

def notebook_of(py:Path) -> str:
    "The library notebook a module is exported from (nbdev writes it on the module's third line)."
    return re.search(r'File to edit: \.\./nbs/(.+?)\.ipynb', py.read_text()).group(1)

def library_imports(py:Path) -> set:
    "Modules of hit_nb that `py` imports, at the top or inside functions."
    found = set()
    for node in ast.walk(ast.parse(py.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module: found.add(node.module.split('.')[0])
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or '').startswith('hit_nb.'):
            found.add(node.module.split('.')[1])
        if isinstance(node, ast.Import): found |= {a.name.split('.')[1] for a in node.names if a.name.startswith('hit_nb.')}
    return found

MODULES = {p.stem: p for p in (ROOT/'hit_nb').glob('*.py') if not p.stem.startswith('_')}

def test_every_module_imports_only_from_earlier_notebooks():
    order = {m: notebook_of(p) for m, p in MODULES.items()}
    later = [(m, d) for m, p in MODULES.items() for d in library_imports(p) if d in order and d != m and order[d] > order[m]]
    assert not later, f"modules importing from a later notebook: {later}"

def test_one_concern_per_module():
    "Every module is written by one notebook and says in one line what it is: its notebook's title summary."
    for m, p in MODULES.items():
        sources = set(re.findall(r'^# %% \.\./nbs/(.+?\.ipynb)', p.read_text(), re.M))
        assert len(sources) == 1, (m, sources)
        doc = ast.get_docstring(ast.parse(p.read_text()))
        assert doc and '\n' not in doc and len(doc) <= 120, (m, doc)

@pytest.mark.parametrize('module', ['core', 'results', 'plots', 'figures', 'notebooks', 'probes'])
def test_module_imports_no_torch(module):
    r = subprocess.run([sys.executable, '-c', f"import hit_nb.{module}, sys; assert 'torch' not in sys.modules"])
    assert r.returncode == 0, f"import hit_nb.{module} imports torch"

# the background documents the project was written from, which are not part of the repository; spelled in pieces so
# that this file does not itself cite them
OUTSIDE = [r'HIT' '_SPEC', r'DESIGN' r'\.md', r'STYLE' r'\.md', r'ENVIRONMENT' r'\.md', r'\.\./' 'shared']

def test_repository_stands_alone():
    "No file of the repository cites a document that is not in it."
    r = subprocess.run(['git', 'grep', '-l', '-E', '|'.join(OUTSIDE)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr                           # 1: nothing found
    assert r.stdout.strip() == '', r.stdout
