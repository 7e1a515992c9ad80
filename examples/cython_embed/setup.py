"""python setup.py build_ext --inplace: builds embed_train against the installed pyoptk."""
from Cython.Build import cythonize
from setuptools import Extension, setup

import pyoptk

setup(
    name="embed_train",
    ext_modules=cythonize([Extension("embed_train", ["embed_train.pyx"], include_dirs=[pyoptk.get_include()])],
                          language_level=3),
)
