#!/usr/bin/env python3
"""The environment tests/test_wheel.py runs the README's commands in: hit_nb's wheel built from this checkout's tracked
sources, installed with its requirements (constraints.txt) into a fresh virtual environment made from the base
interpreter, outside the clone (nothing of the clone's own venv leaks in).

    python3 tests/wheel_env.py DEST     # DEST/dist/hit_nb-*.whl, DEST/venv; DEST/venv/.complete once it is usable

The test builds one itself (about a minute: pip installs torch and the rest from its cache), unless HIT_NB_WHEEL_ENV
names a DEST already complete: .ci/run builds it there beside the project's own venv, both pip installs at once.
"""
import shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what setup.py needs to build the wheel: the tracked sources, not the clone's runs, venv or build leftovers
SOURCES = ('setup.py', 'settings.ini', 'pyproject.toml', 'README.md', 'LICENSE', 'MANIFEST.in', 'hit_nb', 'nbs')

def base_python() -> Path:
    "The base interpreter of this Python (not a venv's)."
    return Path(sys.base_prefix)/'bin'/f'python{sys.version_info.major}.{sys.version_info.minor}'

def sh(args, cwd):
    r = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=1800)
    if r.returncode: raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{r.stderr[-3000:]}")

def build(dest) -> Path:
    "Build the wheel and the venv in `dest`; returns the venv's bin folder."
    dest = Path(dest).absolute()
    if dest.exists(): shutil.rmtree(dest)
    src = dest/'src'
    for name in SOURCES:
        p = ROOT/name
        if p.is_dir(): shutil.copytree(p, src/name, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
        else:
            (src/name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src/name)
    # pip's isolated build environment: the base interpreter needs no setuptools or wheel of its own
    sh([base_python(), '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', dest/'dist', src], cwd=dest)
    whl, = (dest/'dist').glob('hit_nb-*.whl')
    sh([base_python(), '-m', 'venv', dest/'venv'], cwd=dest)
    sh([dest/'venv'/'bin'/'pip', 'install', '-q', '-c', ROOT/'constraints.txt', whl], cwd=dest)
    (dest/'venv'/'.complete').write_text(whl.name + '\n')
    return dest/'venv'/'bin'

def complete(dest) -> bool:
    "Is `dest` a finished environment of this script?"
    return bool(dest) and (Path(dest)/'venv'/'.complete').is_file()

if __name__ == '__main__':
    if len(sys.argv) != 2: sys.exit(__doc__)
    try: print(build(sys.argv[1]))
    except RuntimeError as e: sys.exit(f'wheel_env: {e}')
