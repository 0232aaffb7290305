"""Every setting shows in the composed config, with the default its Python signature gives (one source of truth)."""

from __future__ import annotations

import pytest
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from src.configs.signature import node, signature_parameters
from src.configs.store import TOY_FIXED
from tests.helpers import EXPERIMENTS, compose_cfg

# Arguments the run passes in code (train.py), not through the config.
INJECTED = {"model", "tokenizer", "params", "optimizer", "num_training_steps", "sft", "prefs", "schedule", "rank",
            "world_size"}
NESTED_NODES = {"optimizer", "scheduler", "sft", "prefs"}  # arguments that are config nodes of their own


def target_nodes(cfg: DictConfig, prefix: str = ""):
    for key, value in cfg.items_ex(resolve=False):  # unresolved: SDFT's data.path is ${distill.path}, often ???
        if isinstance(value, DictConfig):
            if "_target_" in value and (str(value._target_).startswith(("src.", "torch.optim"))):
                yield f"{prefix}{key}", value
            yield from target_nodes(value, f"{prefix}{key}.")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_argument_of_every_project_node_is_listed(experiment, tmp_path):
    cfg = compose_cfg([f"experiment={experiment}"], tmp_path)
    tops = [top for top in ("data", "model", "module", "callbacks", "distill", "eval") if cfg.get(top)]
    nodes = [n for top in tops for n in target_nodes(cfg[top], f"{top}.")]
    nodes += [(top, cfg[top]) for top in tops if "_target_" in cfg[top]]
    for path, value in nodes:
        params = signature_parameters(get_object(value._target_))
        listed = {k for k in value if not str(k).startswith("_")} - NESTED_NODES
        fixed = set(TOY_FIXED) if ".ToyWorld" in value._target_ else set()  # generated data: no file settings
        missing = set(params) - listed - INJECTED - NESTED_NODES - fixed
        assert not missing, f"{experiment}: {path} ({value._target_}) does not list {sorted(missing)}"
        assert listed <= set(params), f"{path} lists keys its target does not take: {sorted(listed - set(params))}"


def test_defaults_are_the_signature_defaults(tmp_path):
    """The default experiment's GEM node and the EMO node hold exactly their signatures' defaults."""
    from src.modules.emo import EMOModule
    from src.modules.gem import GEMModule

    for module, cls in (("gem", GEMModule), ("emo", EMOModule)):
        cfg = compose_cfg([f"module={module}"], tmp_path)
        for name, (_, default) in signature_parameters(cls).items():
            if name not in INJECTED | NESTED_NODES:
                assert cfg.module[name] == default, (module, name)


def test_a_typed_key_rejects_a_wrong_type(tmp_path):
    with pytest.raises(Exception, match="batch_size"):
        compose_cfg(["data.batch_size=abc"], tmp_path)


class Base:
    def __init__(self, size: int = 8, path: str = "hub/id", name: str | None = None):
        pass


class Child(Base):
    def __init__(self, extra: float = 0.5, **kwargs):
        kwargs.setdefault("name", "child")
        super().__init__(path="fixed", **kwargs)


def test_signature_follows_kwargs_to_the_parent():
    params = signature_parameters(Child)
    assert {k: d for k, (_, d) in params.items()} == {"extra": 0.5, "size": 8, "name": "child"}  # path is fixed


def test_a_binding_must_be_an_argument():
    with pytest.raises(TypeError, match=r"no argument\(s\) \['sizee'\]"):
        node(Child, sizee=3)


@pytest.mark.parametrize("overrides", [
    ["experiment=gem_toy", "module.beta=0.5"],
    ["experiment=ce_alpaca", "model.dtype=bfloat16"],
    ["experiment=alright_toy", "interleave.mode=bresenham"],
    ["experiment=sequential_toy", "interleave.first=dpo"],
    ["experiment=sequential_toy", "interleave.lam=null",
     "interleave.phases=[{objective:sft,steps:10},{objective:dpo}]"],
    ["experiment=emo_wikitext", "module.cost_embedding=external", "module.cost_embedding_path=head.pt"],
    ["experiment=dpo_ultrafeedback", "data.path=rows.jsonl"],
    ["experiment=dpo_hh", "data.path=rows.jsonl"],
    ["experiment=ce_ultrafeedback", "data.path=rows.jsonl"],
    ["experiment=emo_wikitext", "data.path=rows.txt"],
    ["experiment=xright_pythia1b", "data.sft.path=a.jsonl", "data.prefs.path=b.jsonl"],
])
def test_documented_overrides_are_plain_keys(overrides, tmp_path):
    """Each was `Key ... is not in struct` when the YAML listed only what a run set."""
    cfg = compose_cfg(overrides, tmp_path)
    for override in overrides[1:]:
        key, value = override.split("=", 1)
        plain = str(OmegaConf.select(cfg, key)).replace(" ", "").replace("'", "")
        assert plain == value.replace(" ", "") or (value == "null" and plain == "None"), (key, plain)


def test_an_optional_mapping_is_set_from_the_command_line(tmp_path):
    """``model.lora`` defaults to null; a dict typed on the command line must merge into it (README's LoRA line)."""
    cfg = compose_cfg(["model.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}"], tmp_path)
    assert cfg.model.lora.r == 4 and list(cfg.model.lora.target_modules) == ["q_proj", "v_proj"]
