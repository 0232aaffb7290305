"""FSDP2 wiring that needs no process group: which modules get sharded, the settings, and the config node.

The sharded runs themselves are two-process CLI runs in ``tests/integration/test_fsdp2.py``.
"""

import pytest
import torch
from hydra.utils import instantiate

from src.modules.backbones import tiny_llama
from src.modules.reference import FrozenCopy
from src.modules.sharding import ShardingSettings, find_backbones, full_tensor, unsaved_parameters
from src.modules.strategies import FSDP2Strategy
from tests.helpers import compose_cfg


class Holder(torch.nn.Module):
    """A LightningModule's module tree: a policy, maybe a frozen reference copy, and a buffer."""

    def __init__(self, policy, reference: bool):
        super().__init__()
        self.model = policy
        self.reference = FrozenCopy(policy, average=False) if reference else None
        self.register_buffer("cost_embedding", torch.zeros(3, 2))


def test_backbones_are_the_policy_and_the_reference_copy(tokenizer):
    holder = Holder(tiny_llama(tokenizer, hidden_size=32, num_heads=2), reference=True)
    assert find_backbones(holder) == [holder.model, holder.reference.model]  # never a layer inside either


def test_the_reference_copy_is_the_only_unsaved_weight(tokenizer):
    """Under FSDP2 such a module loads full checkpoints non-strictly (Lightning checks each parameter by name)."""
    policy = tiny_llama(tokenizer, hidden_size=32, num_heads=2)
    assert unsaved_parameters(Holder(policy, reference=False)) == []
    unsaved = unsaved_parameters(Holder(policy, reference=True))
    assert unsaved and all(name.startswith("reference.model.") for name in unsaved)


def test_a_peft_policy_is_one_backbone(tokenizer):
    policy = tiny_llama(tokenizer, hidden_size=32, num_heads=2, lora={"r": 4})
    holder = Holder(policy, reference=False)
    assert find_backbones(holder) == [policy]  # the PeftModel, whose decoder layers hold the adapters
    layers = [m for m in policy.modules() if type(m).__name__ == "LlamaDecoderLayer"]
    assert len(layers) == 2


def test_settings_are_checked_and_map_to_the_policy():
    policy = ShardingSettings(param_dtype="bfloat16", reduce_dtype="float32").policy()
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    default = ShardingSettings().policy()
    assert (default.param_dtype, default.reduce_dtype) == (None, None)  # fp32 throughout: no cast
    with pytest.raises(ValueError, match="trainer.strategy.param_dtype='bf16'"):
        ShardingSettings(param_dtype="bf16")


def test_a_plain_tensor_is_its_own_full_tensor():
    x = torch.ones(2)
    assert full_tensor(x) is x


def test_trainer_fsdp2_composes_to_the_strategy(tmp_path):
    cfg = compose_cfg(["trainer=fsdp2", "trainer.strategy.save_distributed_checkpoint=false",
                       "trainer.strategy.activation_checkpointing=true"], tmp_path)
    assert cfg.trainer.precision == "32-true"
    assert set(cfg.trainer.strategy) == {"_target_", "save_distributed_checkpoint", "param_dtype", "reduce_dtype",
                                         "activation_checkpointing", "process_group_backend"}
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDP2Strategy)
    assert strategy._save_distributed_checkpoint is False
    assert strategy.sharding == ShardingSettings(activation_checkpointing=True)
