"""Your own components: by import path (``balancer._target_=pkg.mod.MyBalancer``) or by the name an
installed package declares as a Python entry point (``balancer=my_method``).

Torch-free and family-agnostic: the families (datasets, encoders, architectures, balancers,
metrics) hand in their contracts; this package finds, imports, describes and checks. See
``docs/plugins.md`` for the contracts a component implements.
"""
