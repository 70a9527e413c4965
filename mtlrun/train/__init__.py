"""Everything that runs while training: the loop, its callbacks, evaluation, diagnostics, baselines."""
