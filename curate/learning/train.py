"""Train LoRA DPO policies for the learning check: one reference model, the same hyper-parameters for
every arm, reference log-probs computed once and shared, adapters cached by a fingerprint.

**The loss** is pure sigmoid DPO, weighted per pair by the curated ``weight`` column
(:class:`curate.interventions.WeightedDPOTrainer`): ``L = mean_i wᵢ · −log σ(β·[log π/π_ref(y⁺) − log π/π_ref(y⁻)])``.
It is the only loss for which the comparison between the original and the curated data is fair: what
the policy learns comes only from the *difference* between chosen and rejected, which is what a recipe
changes. An SFT term (``loss_type=["sigmoid", "sft"]``) also maximises the likelihood of every chosen
response, so it teaches whatever the chosen side shows (flattery in 45% of chosen responses of the
generator) *regardless of the preference*; rebalancing only makes the concept equally common on both
sides, so it cannot remove that part. :class:`LearnConfig` has ``sft_weight`` (0 by default) so the
effect can be measured, and the learning folder records it.

**The SFT stage** (``warmup_steps``, :mod:`curate.learning.warmup`): both arms can start from the reference
fine-tuned on both responses of the original pairs, as SFT → DPO pipelines do; see that module.

**Curation as training would use it** (:func:`training_pairs`): the curated ``train`` split already
holds the dropped rows out, repeats resampled rows, swaps relabelled pairs and carries inoculation
prompts (a system message) — these go into training as they are; evaluation prompts are the original
ones, so inoculation happens at train time only. ``ablate``/``steer`` rules of the recipe become
training-time hooks (:func:`curate.directions.ablate` / :func:`curate.directions.steer`) on the policy,
removed after training, with the directions the curated folder exported.

**Defaults** (:class:`LearnConfig`: 48 steps of 8 pairs, lr 1e-3, β 0.1, LoRA r 16, ≤ 96 tokens) are sized for
a CPU: one arm takes ~9 minutes on 2 cores. At lr 3e-4 a 40-step prototype barely moved the generations
(flattery 0 → 3 of 54); at 1e-3 the implicit reward of the planted concepts saturates (flattery preferred in
all counterfactual pairs) while the answers stay fluent. On a GPU, raise ``steps`` and ``max_length``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import _columns as C
from ..errors import ModelError

__all__ = ["LearnConfig", "RefLogpMemo", "load_reference", "train_policy", "training_pairs"]


@dataclass
class LearnConfig:
    """Hyper-parameters shared by every arm of a learning check (same seed, steps and settings).

    Args:
        steps: optimiser steps per arm.
        batch_size: pairs per step.
        learning_rate: LoRA learning rate.
        beta: DPO β (also the β of the implicit reward β·log π/π_ref).
        lora_r, lora_alpha: LoRA rank and scale (all attention and MLP projections).
        max_length: tokens per sequence (prompt + response), truncated beyond.
        seed: training seed (data order, LoRA init).
        sft_weight: weight of an SFT (NLL on chosen) term added to the DPO loss; 0 = pure DPO (default,
            see the module docstring for why).
        warmup_steps: steps of a supervised warm-up of the reference (:mod:`curate.learning.warmup`) on *both*
            responses of the original training pairs, before DPO (default 24, of ``2 × batch_size``
            responses); 0 = DPO from the model as loaded.
    """

    steps: int = 48
    batch_size: int = 8
    learning_rate: float = 1e-3
    beta: float = 0.1
    lora_r: int = 16
    lora_alpha: int = 32
    max_length: int = 96
    seed: int = 0
    sft_weight: float = 0.0
    warmup_steps: int = 24

    def to_dict(self) -> dict:
        return asdict(self)


# -- the reference model ---------------------------------------------------------------------------------


def load_reference(model=None, *, device: str | None = None):
    """The reference model, trainable: ``(model, tokenizer, model_id, device)``.

    Args:
        model: ``None`` for SmolLM2-135M-Instruct from the offline GGUF, rebuilt as a plain
            ``LlamaForCausalLM`` (the Trainer refuses GGUF-quantized models); a Hub id or local folder; or
            a ``(model, tokenizer)`` tuple (tests).
        device: ``"cuda"`` when available, else ``"cpu"`` (default).

    Raises:
        ModelError: the model cannot be loaded (the message names what to pass instead).
    """
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(model, tuple):
        lm, tok = model
        model_id = getattr(lm.config, "_name_or_path", "") or type(lm).__name__
        lm = lm.to(device)
    elif model is None:
        from ..models import load_model

        gguf, tok, model_id = load_model(None)
        from transformers import AutoModelForCausalLM

        cfg = copy.deepcopy(gguf.config)
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        lm = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        lm.load_state_dict(gguf.state_dict())
        lm = lm.to(device=device, dtype=dtype)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(model))
            lm = AutoModelForCausalLM.from_pretrained(str(model), dtype=dtype)
        except (OSError, ValueError) as err:
            raise ModelError(
                f"Could not load the model {model!r} as a causal LM ({type(err).__name__}: {err}). Pass a local "
                "folder with config.json and weights, a Hub id that is reachable (unset HF_HUB_OFFLINE), or leave "
                "the model unset for the offline default (SmolLM2-135M-Instruct)."
            ) from err
        model_id = str(model) + (f"@{lm.config._commit_hash}" if getattr(lm.config, "_commit_hash", None) else "")
        lm = lm.to(device)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    lm.eval()
    for p in lm.parameters():
        p.requires_grad_(False)
    return lm, tok, model_id, device


def uses_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def training_pairs(dataset, tokenizer, *, weights: bool = False):
    """The TRL-ready dataset of one arm: conversational (``prompt`` = messages) when the tokenizer has a
    chat template, else standard text; plus ``weight`` when ``weights``.

    ``dataset`` has curate's pair schema (``prompt``, ``prompt_messages``, ``chosen``, ``rejected``, and
    ``weight`` for a curated split). Rows with a non-empty ``reason`` other than an intervention's are
    refused upstream; here every row is a training row.
    """
    from datasets import Dataset

    chat = uses_chat_template(tokenizer)
    cols = dataset.column_names
    msgs = (
        dataset[C.PROMPT_MESSAGES]
        if C.PROMPT_MESSAGES in cols
        else [[{"role": "user", "content": p}] for p in dataset[C.PROMPT]]
    )
    rows = {"prompt": [], "chosen": [], "rejected": []}
    for m, p, c, r in zip(msgs, dataset[C.PROMPT], dataset[C.CHOSEN], dataset[C.REJECTED]):
        if chat:
            rows["prompt"].append([{"role": x["role"], "content": x["content"]} for x in m])
            rows["chosen"].append([{"role": "assistant", "content": c}])
            rows["rejected"].append([{"role": "assistant", "content": r}])
        else:
            rows["prompt"].append(p)
            rows["chosen"].append(c)
            rows["rejected"].append(r)
    if weights:
        w = dataset[C.WEIGHT] if C.WEIGHT in cols else [1.0] * len(dataset)
        rows[C.WEIGHT] = [float(x) for x in w]
    return Dataset.from_dict(rows)


# -- shared reference log-probs --------------------------------------------------------------------------


class RefLogpMemo:
    """Reference log-probs of (prompt, response) token sequences, computed once and shared by every arm.

    Keys are the token ids of the prompt and of the completion, so a curated row identical to an original
    one (or a swapped or repeated copy) reuses the number; only new sequences (inoculated prompts) cost a
    forward pass. ``n_computed`` / ``n_reused`` count sequences.
    """

    def __init__(self):
        self.values: dict[bytes, float] = {}
        self.n_computed = 0
        self.n_reused = 0

    @classmethod
    def load(cls, path: str | Path) -> RefLogpMemo:
        """A memo filled from ``path`` (written by :meth:`save`); empty when the file does not exist yet."""
        memo = cls()
        path = Path(path)
        if path.exists():
            with np.load(path) as f:
                memo.values = dict(zip((bytes(k) for k in f["keys"]), f["values"].tolist()))
        return memo

    def save(self, path: str | Path) -> None:
        """Write every value to ``path`` (``.npz``), atomically: a killed run leaves the old file or the new one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        keys = np.array(list(self.values), dtype="S20")
        np.savez(tmp, keys=keys, values=np.array(list(self.values.values()), dtype=np.float64))
        os.replace(tmp, path)

    @staticmethod
    def key(input_ids, completion_mask) -> bytes:
        ids = np.asarray(input_ids.cpu(), dtype=np.int64)
        m = np.asarray(completion_mask.cpu(), dtype=np.int64)
        n = int(m.nonzero()[0].max()) + 1 if m.any() else len(ids)
        return hashlib.sha1(ids[:n].tobytes() + b"|" + m[:n].tobytes()).digest()


def _trainer_class():
    import torch

    from ..interventions import dpo

    base = dpo.WeightedDPOTrainer

    class LearningDPOTrainer(base):
        """WeightedDPOTrainer whose reference log-probs come from a shared :class:`RefLogpMemo`, with an
        optional SFT term (``sft_weight``) on the chosen responses, weighted like the DPO term."""

        memo: RefLogpMemo | None = None
        sft_weight: float = 0.0

        def compute_ref_log_probs(self, model, inputs):
            memo = self.memo
            if memo is None:
                return super().compute_ref_log_probs(model, inputs)
            ids, cm = inputs["input_ids"], inputs["completion_mask"]
            keys = [memo.key(ids[i], cm[i]) for i in range(ids.shape[0])]
            b = ids.shape[0] // 2
            missing = [i for i in range(b) if keys[i] not in memo.values or keys[b + i] not in memo.values]
            if missing:
                rows = torch.tensor(missing + [b + i for i in missing], device=ids.device)
                sub = {
                    k: (
                        v.index_select(0, rows.to(v.device))
                        if torch.is_tensor(v) and v.shape[0] == 2 * b
                        else v.index_select(0, torch.tensor(missing, device=v.device))
                        if torch.is_tensor(v) and v.shape[0] == b
                        else v
                    )
                    for k, v in inputs.items()
                }
                c, r = super().compute_ref_log_probs(model, sub)
                for j, i in enumerate(missing):
                    memo.values[keys[i]] = float(c[j])
                    memo.values[keys[b + i]] = float(r[j])
                memo.n_computed += 2 * len(missing)
            memo.n_reused += 2 * (b - len(missing))
            chosen = torch.tensor([memo.values[keys[i]] for i in range(b)], dtype=torch.float32)
            rejected = torch.tensor([memo.values[keys[b + i]] for i in range(b)], dtype=torch.float32)
            return chosen, rejected

        def _compute_loss(self, model, inputs, return_outputs):
            if not self.sft_weight or not isinstance(inputs, dict):
                return super()._compute_loss(model, inputs, return_outputs)
            weight = inputs.get(self.weight_column)
            out = super()._compute_loss(model, inputs, return_outputs)
            loss = out[0] if return_outputs else out
            b = inputs["input_ids"].shape[0] // 2
            ids, cm = inputs["input_ids"][:b], inputs["completion_mask"][:b]
            logits = model(input_ids=ids, attention_mask=inputs["attention_mask"][:b], use_cache=False).logits
            lp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
            mask = cm[:, 1:].float()
            nll = -(lp * mask).sum(1) / mask.sum(1).clamp(min=1)
            w = weight.to(nll.device) if weight is not None else torch.ones_like(nll)
            loss = loss + self.sft_weight * (w * nll).mean()
            return (loss, out[1]) if return_outputs else loss

    return LearningDPOTrainer


_TRAINER = None


def trainer_class():
    global _TRAINER
    if _TRAINER is None:
        _TRAINER = _trainer_class()
    return _TRAINER


# -- fingerprints and the adapter cache ------------------------------------------------------------------


def _code_hash() -> str:
    src = "".join(inspect.getsource(f) for f in (_trainer_class, _lora, _trainer_args, train_policy, training_pairs))
    return hashlib.sha256(src.encode()).hexdigest()[:12]


def fingerprint(
    train_ds, *, model_id: str, config: LearnConfig, recipe: dict | None = None, intervention: dict | None = None
) -> str:
    """A deterministic identity of one trained arm: its training rows, the recipe, the model, the
    hyper-parameters, the training-time intervention and this module's code."""
    h = hashlib.sha256()
    for row in train_ds.to_list():
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
    h.update(
        json.dumps(
            {
                "model": model_id,
                "config": config.to_dict(),
                "recipe": recipe,
                "intervention": intervention,
                "code": _code_hash(),
            },
            sort_keys=True,
            default=str,
        ).encode()
    )
    return h.hexdigest()[:20]


def learning_cache_dir() -> Path:
    """Where the learning check keeps trained adapters and scores: ``learning/`` under curate's one cache root
    (:func:`curate.cache.default_cache_dir`: ``$CURATE_CACHE``, else ``$XDG_CACHE_HOME/curate``, else
    ``~/.cache/curate``)."""
    from ..cache import default_cache_dir

    return default_cache_dir() / "learning"


# -- training --------------------------------------------------------------------------------------------


def _lora(config: LearnConfig):
    """The LoRA adapter every trained stage uses (the SFT warm-up and both DPO arms)."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        target_modules="all-linear",
    )


def _trainer_args(config: LearnConfig, reference, *, progress: bool) -> dict:
    """Training arguments shared by the SFT warm-up and the DPO arms: constant lr, no checkpoints, seeded,
    bf16 on CUDA, CPU otherwise."""
    on_cuda = next(reference.parameters()).device.type == "cuda"
    return dict(
        learning_rate=config.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        bf16=on_cuda,
        use_cpu=not on_cuda,
        report_to="none",
        save_strategy="no",
        gradient_checkpointing=False,
        max_length=config.max_length,
        dataloader_num_workers=0,
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=not progress,
    )


def train_policy(
    reference,
    tokenizer,
    train_ds,
    config: LearnConfig,
    *,
    memo: RefLogpMemo | None = None,
    intervention=None,
    cache_dir: str | Path | None = None,
    fp: str | None = None,
    progress: bool = True,
    work_dir: str | Path | None = None,
):
    """Train one LoRA DPO policy on ``train_ds`` (from :func:`training_pairs` with weights).

    Args:
        reference: the reference model (left untouched; the policy is a LoRA adapter on a copy).
        tokenizer: its tokenizer.
        train_ds: the arm's pairs (``prompt``, ``chosen``, ``rejected``, ``weight``).
        config: :class:`LearnConfig`.
        memo: shared reference log-probs (computed here when missing).
        intervention: ``None`` or a callable ``model -> context manager`` applied around ``train()`` only
            (ablation / steering hooks on the policy's base layers).
        cache_dir / fp: adapter cache folder and this arm's fingerprint; a hit loads the adapter instead of
            training.

    Returns:
        ``(policy, info)``: the PEFT model in eval mode and ``{"cached", "seconds", "train_loss", ...}``.
    """
    import tempfile
    import time

    import torch
    from peft import PeftModel, get_peft_model
    from trl import DPOConfig

    t0 = time.perf_counter()
    base = copy.deepcopy(reference)
    target = cache_dir and fp and Path(cache_dir) / fp
    if target and (target / "adapter_config.json").exists():
        policy = PeftModel.from_pretrained(base, str(target)).eval()
        info = json.loads((target / "train_info.json").read_text()) if (target / "train_info.json").exists() else {}
        return policy, {**info, "cached": True, "seconds_loading": round(time.perf_counter() - t0, 2)}
    torch.manual_seed(config.seed)
    for p in base.parameters():
        p.requires_grad_(False)
    policy = get_peft_model(base, _lora(config))
    work = Path(work_dir or tempfile.mkdtemp(prefix="curate-learn-"))
    args = DPOConfig(
        output_dir=str(work),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        beta=config.beta,
        logging_steps=max(1, config.steps // 10),
        precompute_ref_log_probs=True,
        loss_type=["sigmoid"],
        remove_unused_columns=True,
        **_trainer_args(config, reference, progress=progress),
    )
    cls = trainer_class()
    cls.memo = memo
    cls.sft_weight = config.sft_weight
    trainer = cls(model=policy, args=args, train_dataset=train_ds, processing_class=tokenizer)
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    t1 = time.perf_counter()
    ctx = intervention(policy.get_base_model()) if intervention is not None else contextlib.nullcontext()
    policy.train()
    with ctx:
        result = trainer.train()
    policy.eval()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    acc = [h.get("rewards/accuracies") for h in logs if h.get("rewards/accuracies") is not None]
    info = {
        "cached": False,
        "train_loss": float(result.training_loss),
        "steps": int(trainer.state.global_step),
        "reward_accuracy_last": acc[-1] if acc else None,
        "n_pairs": len(train_ds),
        "seconds_ref_and_setup": round(t1 - t0, 2),
        "seconds_train": round(time.perf_counter() - t1, 2),
    }
    if target:
        target.mkdir(parents=True, exist_ok=True)
        policy.save_pretrained(str(target))
        (target / "train_info.json").write_text(json.dumps(info, indent=2))
    return policy, info
