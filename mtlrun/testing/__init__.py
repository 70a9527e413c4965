"""Test helpers for code built on mtlrun: ``check_balancer(MyBalancer)`` runs the property suite
every built-in balancer passes (see :mod:`mtlrun.testing.balancer_properties`) on your own class.

    >>> from mtlrun.testing import check_balancer
    >>> from mtlrun.balancers import MGDA
    >>> print(check_balancer(MGDA, properties=["permutation", "equal_gradients"]))
    MGDA: 2 properties hold (permutation, equal_gradients)

It needs torch only (no test framework), so it runs from a notebook as well as from a test.
"""

from mtlrun.testing.balancer_properties import PROPERTIES, BalancerReport, check_balancer

__all__ = ["PROPERTIES", "BalancerReport", "check_balancer"]
