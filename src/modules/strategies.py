"""Strategy factories for what YAML cannot spell (a set of classes), and FSDP2 as pure data parallelism."""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

from src.modules.sharding import ShardingSettings


def fsdp(layer_classes: list[str], **kwargs: Any) -> FSDPStrategy:
    """``FSDPStrategy`` wrapping each of ``layer_classes`` (dotted paths) as its own shard unit."""
    return FSDPStrategy(auto_wrap_policy={get_class(path) for path in layer_classes}, **kwargs)


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's ``ModelParallelStrategy`` as FSDP2 over every process (data parallel = devices x nodes, no tensor
    parallelism); the module shards its backbones in ``configure_model`` (``src/modules/sharding.py``) with
    :attr:`sharding`. Runs on CPU (gloo) too, unlike FSDP1.

    ``save_distributed_checkpoint``: true writes each checkpoint as a directory of per-rank shards (torch distributed
    checkpoint; fast, no full copy on any rank; ``python -m src.run.convert_checkpoint`` turns one into a Hugging
    Face directory), false gathers a single ``.ckpt`` file on rank 0 (``torch.load``-able, as DDP writes).
    The other arguments are :class:`ShardingSettings`.
    """

    def __init__(
        self,
        save_distributed_checkpoint: bool = True,
        param_dtype: str | None = None,
        reduce_dtype: str | None = None,
        activation_checkpointing: bool = False,
        process_group_backend: str | None = None,
    ):
        self.sharding = ShardingSettings(param_dtype, reduce_dtype, activation_checkpointing)
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1,
                         save_distributed_checkpoint=save_distributed_checkpoint,
                         process_group_backend=process_group_backend)

    def setup_environment(self) -> None:
        # The parent's "auto" would make the data-parallel size the node count; here every process is one replica.
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()
