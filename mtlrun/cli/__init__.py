"""The command line: the ``mtlrun`` entry point (``main``), its help, the resume command, the run
folder guard and the Hydra task."""
