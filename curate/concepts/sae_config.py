"""The SAE annotator's configuration: one dataclass that round-trips (``to_dict`` / ``from_dict``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .. import _columns as C
from ..errors import ConfigError
from .activations import _torch_dtype


@dataclass(frozen=True)
class SAEConfig:
    """How an SAE annotator reads and pools, everything but the SAE itself (see :class:`SAEConcepts` for each
    field). Round-trips through :meth:`to_dict` / :meth:`from_dict` (as sae-lens configs do): the Ray workers
    and the fit-then-annotate path rebuild annotators from it, and with the SAE's identity it is the
    annotator's identity.

    Example:

        >>> cfg = SAEConfig(layer=12, k=16)
        >>> SAEConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    model: str | None = None
    layer: int = 15
    pooling: str = "max"
    k: int = 32
    source: str | None = None
    backend: str = "lm"
    device: str = "cpu"
    dtype: str | None = None  # None: float32
    max_length: int = 1024
    batch_tokens: int = 4096  # padded tokens per micro-batch, inputs length-bucketed per call (GPU: 16384+)
    max_batch_rows: int = 32
    text_columns: tuple[str, ...] = C.SIDES
    share_prompt: bool = True

    def __post_init__(self):  # one spelling of each value, so equal configs compare (and hash) equal
        object.__setattr__(self, "dtype", str(_torch_dtype(self.dtype)).replace("torch.", ""))
        object.__setattr__(self, "text_columns", tuple(self.text_columns))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["text_columns"] = list(self.text_columns)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SAEConfig":
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"Unknown SAE config keys {unknown}. Known keys: {known}.")
        return cls(**d)
