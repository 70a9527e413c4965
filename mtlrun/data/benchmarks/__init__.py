"""The built-in datasets and benchmarks, one module each (registered in ``DATASETS`` on import)."""
