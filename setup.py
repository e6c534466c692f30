from configparser import ConfigParser
import setuptools, shlex, shutil
from pathlib import Path
from setuptools.command.build_py import build_py

# nbdev 2 layout: every setting lives in settings.ini
config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o:cfg[o] for o in cfg_keys}

licenses = {
    'apache2': ('Apache Software License 2.0','OSI Approved :: Apache Software License'),
    'mit': ('MIT License', 'OSI Approved :: MIT License'),
}
statuses = [ '1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive' ]
py_versions = '3.9 3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
sweep_requirements = shlex.split(cfg.get('sweep_requirements', ''))
tensorboard_requirements = shlex.split(cfg.get('tensorboard_requirements', ''))
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
min_python = cfg['min_python']
lic_classifier = [] if lic[1] is None else ['License :: ' + lic[1]]

# The notebooks that papermill runs (training, evaluation, the IS classifier, ensembles) and the figure notebooks ship
# inside the package as hit_nb/nbs/, so that a pip-installed hit_nb sweeps and draws figures from any folder. A clone
# (or an editable install) keeps using its own nbs/ (hit_nb.notebooks.notebook_folder).
SHIPPED_NOTEBOOKS = ['train.ipynb', 'evaluate.ipynb', 'train_ensemble.ipynb', 'train_classifier.ipynb', 'figures/*.ipynb']

class BuildWithNotebooks(build_py):
    "build_py that also copies the papermill and figure notebooks into the built package (not for editable installs)."
    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False): return
        src, dst = Path('nbs'), Path(self.build_lib) / cfg['lib_path'] / 'nbs'
        for pattern in SHIPPED_NOTEBOOKS:
            found = sorted(src.glob(pattern))
            assert found, f"no notebook {src / pattern} to ship"
            for nb in found:
                (dst / nb.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(nb, dst / nb.relative_to(src))

setuptools.setup(
    cmdclass = {'build_py': BuildWithNotebooks},
    name = cfg['lib_name'],
    license = lic[0],
    classifiers = [
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ] + lic_classifier + ['Programming Language :: Python :: '+o for o in py_versions[py_versions.index(min_python):]],
    url = cfg['git_url'],
    packages = setuptools.find_packages(include=['hit_nb', 'hit_nb.*']),
    include_package_data = True,
    install_requires = requirements,
    extras_require = {'dev': dev_requirements, 'sweep': sweep_requirements, 'tensorboard': tensorboard_requirements},
    dependency_links = cfg.get('dep_links','').split(),
    python_requires  = '>=' + cfg['min_python'],
    long_description = open('README.md', encoding='utf-8').read(),
    long_description_content_type = 'text/markdown',
    zip_safe = False,
    entry_points = {
        'console_scripts': cfg.get('console_scripts','').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']
    },
    project_urls = {'Source': cfg['git_url']},
    **setup_cfg)
