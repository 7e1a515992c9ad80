from Cython.Build import cythonize
from setuptools import Extension, setup

import pyoptk

setup(name="capi_checks", ext_modules=cythonize(
    [Extension("capi_checks", ["capi_checks.pyx"], include_dirs=[pyoptk.get_include()])], language_level=3))
