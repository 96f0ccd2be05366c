"""The base class every data intervention derives from."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

from ..errors import NotFittedError
from ._state import PairState


class Intervention:
    """One step that changes which pairs the reward sees or what each pair rewards.

    A subclass sets :attr:`name` and implements :meth:`_apply`, which edits a
    :class:`~curate.interventions._state.PairState` in place and returns a dict of what it did; the base
    class stores that dict in ``stats_`` and :meth:`to_dict` reports it together with the arguments.

    Args:
        concepts: the concept ids this step acts on.
        strength: how strongly (meaning per subclass).
    """

    name: ClassVar[str] = "intervention"

    def __init__(self, concepts: Iterable[str], strength: float = 1.0):
        self.concepts = list(concepts)
        self.strength = strength

    def apply(self, state: PairState) -> "Intervention":
        """Edit ``state`` in place; what was done goes to ``stats_``. Returns self."""
        missing = [c for c in self.concepts if c not in state.concepts]
        if missing:
            from ..errors import ConceptError

            raise ConceptError(
                f"{type(self).__name__}: no scores for {missing}. Concepts in the state: {state.concepts}."
            )
        self.stats_ = self._apply(state)
        return self

    def _apply(self, state: PairState) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {"concepts": self.concepts, "strength": self.strength}

    def to_dict(self) -> dict[str, Any]:
        """Arguments and, once applied, exactly what this step did (``stats_``)."""
        if not hasattr(self, "stats_"):
            raise NotFittedError(f"{type(self).__name__} has not been applied yet; call apply(state) first.")
        return {"intervention": self.name, **self.params(), **self.stats_}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
