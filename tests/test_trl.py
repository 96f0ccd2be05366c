"""Curated output goes into TRL as is: WeightedDPOTrainer uses `weight`, RewardTrainer uses `margin`.

Tiny randomly initialised Llama (hidden 32, 2 layers) and a word-level tokenizer built from the data,
2 training steps on CPU.
"""

import numpy as np
import pytest
from _tiny_lm import build_tokenizer, tiny_config

from curate import _columns as C
from curate.recipe import Recipe


@pytest.fixture(scope="module")
def curated():
    from curate import make_preference_pairs
    from curate.interventions import apply_recipe

    gen = make_preference_pairs(48, seed=3)
    recipe = Recipe.from_ids(block=["flattery", "markdown"], block_with=["rebalance", "margin"])
    dd, _ = apply_recipe(gen.dataset, recipe, audit=False)
    return dd


def test_weighted_dpo_trains_and_uses_weights(curated, tmp_path):
    import torch
    from transformers import LlamaForCausalLM
    from trl import DPOConfig

    from curate.interventions import WeightedDPOTrainer

    train = curated[C.TRAIN_SPLIT]
    assert {C.PROMPT, C.CHOSEN, C.REJECTED, C.WEIGHT, C.MARGIN} <= set(train.column_names)
    tok = build_tokenizer(train)
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(len(tok)))
    args = DPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        precompute_ref_log_probs=True,
        gradient_checkpointing=False,
        max_length=128,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = WeightedDPOTrainer(model=model, args=args, train_dataset=train, processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    assert C.WEIGHT in batch and batch[C.WEIGHT].shape == (4,)

    def loss_with(w):
        b = {k: (v.clone() if hasattr(v, "clone") else v) for k, v in batch.items()}
        b[C.WEIGHT] = torch.as_tensor(w, dtype=torch.float32)
        with torch.no_grad():
            return float(trainer.compute_loss(trainer.model, b))

    one = loss_with([1.0, 1.0, 1.0, 1.0])
    assert loss_with([2.0, 2.0, 2.0, 2.0]) == pytest.approx(2 * one, rel=1e-5)
    assert loss_with([0.0, 0.0, 0.0, 0.0]) == pytest.approx(0.0, abs=1e-7)
    # a weight on one pair only: the loss is that pair's loss / batch size
    per_pair = [loss_with(np.eye(4)[i] * 4) for i in range(4)]
    assert np.mean(per_pair) == pytest.approx(one, rel=1e-5)
    result = trainer.train()
    assert trainer.state.global_step == 2 and np.isfinite(result.training_loss)


def test_reward_trainer_reads_margin(curated, tmp_path):
    import torch
    from transformers import LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    train = curated[C.TRAIN_SPLIT]
    margins = np.asarray(train[C.MARGIN])
    assert (margins != 0).any()
    tok = build_tokenizer(train)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_config(len(tok), num_labels=1))
    args = RewardConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        gradient_checkpointing=False,
        max_length=128,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    assert C.MARGIN in batch

    def loss_with(m):
        b = dict(batch)
        b[C.MARGIN] = torch.as_tensor(m, dtype=torch.float32)
        with torch.no_grad():
            return float(trainer.compute_loss(trainer.model, b))

    assert loss_with([0.0] * 4) != pytest.approx(loss_with([3.0] * 4))
    result = trainer.train()
    assert trainer.state.global_step == 2 and np.isfinite(result.training_loss)
