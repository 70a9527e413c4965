"""mtlrun: a command-line workbench for multi-task learning research."""

__version__ = "0.1.0"
