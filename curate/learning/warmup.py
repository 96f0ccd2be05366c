"""The SFT stage before DPO: warm up the reference model on the data's responses, without preference.

DPO changes the probability of what the policy already writes. SmolLM2-135M-Instruct never opens with a
compliment, so DPO on flattery-rewarding pairs gives the flattering variant all the implicit reward (1.00 of
counterfactual pairs) and still almost never produces one (+0.025 matches per response, CI through 0, in the
learning benchmark without warm-up). Real pipelines (Tulu 3, Dolci) run DPO from a model fine-tuned on
responses like the preference data's; :func:`warm_up_reference` does that: a LoRA SFT on *both* responses of
the original training pairs (:func:`warmup_pairs`: the data's concepts at their base rate, no preference),
merged into the weights. Both arms of the learning check start from that model and are measured against it,
so the shift each shows is what its preference data taught.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from pathlib import Path

from .train import LearnConfig, _lora, _trainer_args, training_pairs

__all__ = ["warm_up_reference", "warmup_code_hash", "warmup_pairs"]


def warmup_code_hash() -> str:
    """A hash of this stage's code, part of the warm-up's fingerprint (a changed warm-up retrains). Not
    :func:`curate.cache.code_hash`, which hashes one function or callable object."""
    src = "".join(inspect.getsource(f) for f in (_lora, _trainer_args, warm_up_reference, warmup_pairs))
    return hashlib.sha256(src.encode()).hexdigest()[:12]


def warmup_pairs(dataset, tokenizer):
    """The SFT dataset of the warm-up: every pair gives two rows, its prompt with the chosen and with the
    rejected response, so the set carries the data's concepts at their base rate and no preference."""
    from datasets import Dataset

    pairs = training_pairs(dataset, tokenizer)
    rows = {"prompt": [], "completion": []}
    for p, c, r in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"]):
        rows["prompt"] += [p, p]
        rows["completion"] += [c, r]
    return Dataset.from_dict(rows)


def warm_up_reference(
    reference,
    tokenizer,
    sft_ds,
    config: LearnConfig,
    *,
    cache_dir: str | Path | None = None,
    fp: str | None = None,
    progress: bool = True,
):
    """Supervised warm-up of the reference model before DPO (the SFT stage of an SFT → DPO pipeline).

    DPO moves the probability of what the policy already produces: a concept the reference never writes (a
    flattering opener, a markdown heading) can gain a large implicit reward and still never appear in a
    generation. Post-training pipelines (Tulu 3, Dolci) run DPO from a model fine-tuned on responses like the
    preference data's. The warm-up does that on ``sft_ds`` (:func:`warmup_pairs`: chosen *and* rejected
    responses, so it teaches the data's concepts at their base rate and no preference), with a LoRA of the
    same rank merged into the weights. Every arm then starts from this model and is measured against it.

    Returns:
        ``(model, info)``: the merged model (eval mode, frozen) and ``{"cached", "seconds", "train_loss"}``.
    """
    import tempfile
    import time

    import torch
    from peft import PeftModel, get_peft_model
    from trl import SFTConfig, SFTTrainer

    t0 = time.perf_counter()
    base = copy.deepcopy(reference)
    target = cache_dir and fp and Path(cache_dir) / fp
    if target and (target / "adapter_config.json").exists():
        merged = PeftModel.from_pretrained(base, str(target)).merge_and_unload()
        info = json.loads((target / "train_info.json").read_text()) if (target / "train_info.json").exists() else {}
        info = {**info, "cached": True}
    else:
        torch.manual_seed(config.seed)
        model = get_peft_model(base, _lora(config))
        args = SFTConfig(
            output_dir=tempfile.mkdtemp(prefix="curate-warmup-"),
            max_steps=config.warmup_steps,
            per_device_train_batch_size=2 * config.batch_size,
            logging_steps=max(1, config.warmup_steps // 5),
            completion_only_loss=True,
            packing=False,
            **_trainer_args(config, reference, progress=progress),
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=sft_ds, processing_class=tokenizer)
        if not progress:
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        model.train()
        result = trainer.train()
        info = {
            "cached": False,
            "train_loss": float(result.training_loss),
            "steps": int(trainer.state.global_step),
            "n_sequences": len(sft_ds),
        }
        if target:
            target.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(str(target))
            (target / "train_info.json").write_text(json.dumps(info, indent=2))
        merged = model.merge_and_unload()
    # the merged weights go into a fresh copy of the reference: the trainer leaves state on the model it
    # trained (gradient checkpointing, input hooks) under which a later LoRA policy computed the warm model's
    # outputs unchanged (measured: policy == reference on every sequence)
    weights = merged.state_dict()
    warm = copy.deepcopy(reference)
    warm.load_state_dict(weights)
    warm.eval()
    for p in warm.parameters():
        p.requires_grad_(False)
    return warm, {**info, "seconds": round(time.perf_counter() - t0, 2)}
