"""mtlrun from Python: ``mtlrun.fit``, ``mtlrun.sweep``, ``mtlrun.compose``, ``mtlrun.load_run``, ``mtlrun.compare``.

A run started here is the run the command starts: the same Hydra composition of the packaged
configs, the same checks and callbacks, the same run folder; only the ending differs, a typed
result or a typed error instead of a table and an exit status. The names are reached through the
package face (``import mtlrun``), which imports these modules on first use:

- :mod:`mtlrun.api.launch`: ``fit`` and ``sweep`` through Hydra's own run and sweep machinery;
- :mod:`mtlrun.api.hydra_app`: the Hydra application of the command, and ``compose``;
- :mod:`mtlrun.api.config_overrides`: a config object as the overrides that compose it;
- :mod:`mtlrun.api.results`: ``RunResult`` and ``load_run``; :mod:`mtlrun.results.transfer_report` its report;
- :mod:`mtlrun.api.errors`: the errors raised where the command exits non-zero;
- :mod:`mtlrun.api.process_state`: what a run changes in the process, put back afterwards;
- :mod:`mtlrun.api.comparison`: ``compare``, the table of ``mtlrun-compare``.
"""
