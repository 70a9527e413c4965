"""The package's version, in a module of its own: the training side and ``--help`` read it without
importing the package face (``mtlrun/__init__.py``), which refers to the Python API above them."""

__version__ = "0.1.0"
