"""The start-up shortcuts through torch's private paths check what they rely on and fall back to
the public API when a torch differs (mtlrun.train.optimizers, mtlrun.train.seeding)."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap

import pytest
import torch

from mtlrun.train import optimizers, seeding


def test_this_torch_takes_both_shortcuts() -> None:
    # the torch the package is tested on: the shortcuts are in effect, so start-up stays fast
    assert optimizers.UNHOOKED, optimizers.FALLBACK_REASON
    assert issubclass(optimizers.Adam, optimizers._WithoutCompileHooks)
    assert seeding.SHORTCUT_PROBLEM is None


def _unknown_wrapper(method):
    @functools.wraps(method)
    def audited(*args, **kwargs):  # a wrapper torch might add one day, doing something that matters
        return method(*args, **kwargs)

    return audited


def _optimizer_base(**replaced) -> type:
    """A stand-in for ``torch.optim.Optimizer`` with some methods replaced."""
    namespace = {name: getattr(torch.optim.Optimizer, name) for name in optimizers.BASE_METHODS}
    namespace.update(replaced)
    return type("Optimizer", (), namespace)


def test_an_unknown_wrapper_is_refused() -> None:
    base = _optimizer_base(zero_grad=_unknown_wrapper(torch.optim.Optimizer.zero_grad))
    reason = optimizers.hook_free_methods(base)
    assert isinstance(reason, str) and "Optimizer.zero_grad has a wrapper" in reason and "audited" in reason


def test_a_changed_signature_is_refused() -> None:
    def state_dict(self, keep_vars=False):  # not torch.optim's own function
        return {}

    reason = optimizers.hook_free_methods(_optimizer_base(state_dict=state_dict))
    assert isinstance(reason, str) and "Optimizer.state_dict" in reason


def test_a_step_without_the_differentiable_option_is_refused() -> None:
    class Legacy(torch.optim.SGD):
        def __init__(self, params, lr=0.1):  # no 'differentiable': step's grad mode cannot be read
            super().__init__(params, lr=lr)

    reason = optimizers.hook_free_methods(classes=(Legacy,))
    assert reason == "Legacy takes no 'differentiable' option"


def test_the_optimizers_fall_back_to_torch_optim_when_a_method_is_not_as_expected() -> None:
    # a fresh interpreter where torch.optim's zero_grad carries a wrapper mtlrun does not know
    script = textwrap.dedent(
        """
        import functools, torch
        original = torch.optim.Optimizer.zero_grad
        @functools.wraps(original)
        def audited(self, set_to_none=True):
            audited.calls += 1
            return original(self, set_to_none)
        audited.calls = 0
        torch.optim.Optimizer.zero_grad = audited
        from mtlrun.train import optimizers
        assert not optimizers.UNHOOKED and "zero_grad" in optimizers.FALLBACK_REASON
        for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)):
            weights = []
            for make in (lambda p: optimizers.build_optimizer(name, p, 0.05, 0.01, 0.9),
                         lambda p: cls(p, lr=0.05, weight_decay=0.01, **({"momentum": 0.9} if name == "sgd" else {}))):
                torch.manual_seed(0)
                model = torch.nn.Linear(4, 2)
                optimizer = make([{"params": list(model.parameters())}])
                assert isinstance(optimizer, cls) and not isinstance(optimizer, optimizers._WithoutCompileHooks)
                for step in range(3):
                    optimizer.zero_grad()
                    model(torch.full((3, 4), float(step))).pow(2).sum().backward()
                    optimizer.step()
                weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
            assert torch.equal(weights[0], weights[1]), name
        assert audited.calls == 18  # the public method ran, wrapper included, on every call
        print("fallback ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "fallback ok"


def test_a_public_function_that_does_more_is_not_short_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    def use_deterministic_algorithms(mode, *, warn_only=False):  # a newer torch that sets more state
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)
        torch.backends.cudnn.deterministic = mode

    monkeypatch.setattr(torch, "use_deterministic_algorithms", use_deterministic_algorithms)
    assert seeding.deterministic_shortcut_problem() == (
        "torch.use_deterministic_algorithms also reads backends, cudnn, torch"
    )


def test_a_missing_private_switch_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch._C, "_set_deterministic_algorithms")
    assert seeding.deterministic_shortcut_problem() == "torch._C._set_deterministic_algorithms is missing"


def test_deterministic_mode_falls_back_to_the_public_function(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(seeding, "SHORTCUT_PROBLEM", "forced")
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(torch._C, "_set_deterministic_algorithms", lambda *a, **k: calls.append("private"))
    seeding.set_deterministic_algorithms()
    assert calls == [((True,), {"warn_only": True})]


def test_a_switch_that_does_not_take_is_redone_publicly(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(torch._C, "_set_deterministic_algorithms", lambda *a, **k: calls.append("private"))
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: False)
    seeding.set_deterministic_algorithms()
    assert calls == ["private", ((True,), {"warn_only": True})]
