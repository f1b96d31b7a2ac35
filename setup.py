"""fxemu: learn an audio effect from dry/wet recordings with TFX, and serve it.

The same file installs the package locally (`pip install -e .`) and on Beam workers
(`--setup_file ./setup.py`).
"""
import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))


def _requirements(name):
  with open(os.path.join(HERE, name)) as f:
    return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


setuptools.setup(
    name='fxemu',
    version='0.1.0',
    description='Emulate audio effects from dry/wet recordings with a TFX pipeline.',
    python_requires='>=3.10,<3.11',
    packages=setuptools.find_packages(include=['pipeline', 'pipeline.*', 'components',
                                               'components.*', 'trainer', 'kubeflow',
                                               'schema']),
    package_data={'schema': ['*.pbtxt'], 'pipeline.report': ['templates/*.html']},
    include_package_data=True,
    install_requires=_requirements('requirements.txt'),
    extras_require={'test': _requirements('requirements-test.txt')},
    entry_points={'console_scripts': ['fxemu=pipeline.cli.main:main']},
)
