"""Overrides that keep sweep jobs tiny (synthetic data, two epochs, no baselines or diagnostics)."""

SMALL = [
    "dataset=synthetic",
    "dataset.num_samples=600",
    "dataset.input_dim=8",
    "trainer.epochs=2",
    "trainer.batch_size=64",
    "diagnostics.every=0",
    "report.baselines=false",
]
