"""The Hugging Face model card: front matter the Hub reads, then objective, data, model, steps, metrics, command."""

from __future__ import annotations

import yaml

from src.run.model_card import model_card, write_model_card

DPO_CFG = {
    "run_name": "dpo_ultrafeedback-seed1",
    "experiment_name": "dpo_ultrafeedback",
    "tags": ["paper"],
    "module": {
        "_target_": "src.modules.dpo.DPOModule",
        "beta": 0.1,
        "reference": "adapter",
        "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 5e-7},
        "scheduler": {"_target_": "src.modules.lr_schedules.warmup_schedule", "_partial_": True, "name": "cosine"},
    },
    "data": {"_target_": "src.datamodules.preference.UltraFeedbackPreferenceDataModule",
             "path": "HuggingFaceH4/ultrafeedback_binarized", "num_train": 2000, "max_length": 512},
    "model": {"_target_": "src.modules.backbones.pretrained", "_partial_": True,
              "name_or_path": "EleutherAI/pythia-1b", "lora": {"r": 16, "alpha": 32}},
}
COMMAND = "python train.py experiment=dpo_ultrafeedback seed=1"


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def section(card: str, heading: str) -> str:
    """The text under the ``## <heading>...`` line, up to the next heading."""
    return card.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]


def test_front_matter_names_the_library_base_model_and_objective():
    card = model_card(DPO_CFG, {}, COMMAND, 120)
    assert front_matter(card) == {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "base_model": "EleutherAI/pythia-1b",
        "tags": ["posttrain", "dpo", "dpo_ultrafeedback", "paper"],
    }


def test_sections_hold_the_settings_without_hydra_keys():
    card = model_card(DPO_CFG, {"val/loss": 0.69314718, "val/rewards/accuracies": 0.75}, COMMAND, 120)
    assert "_target_" not in card and "_partial_" not in card
    assert "with the **dpo** objective for 120 optimizer steps" in card
    objective = yaml.safe_load(section(card, "Objective: `DPOModule`").split("```yaml\n")[1].split("```")[0])
    assert objective == {"beta": 0.1, "reference": "adapter", "optimizer": {"type": "AdamW", "lr": 5e-7},
                         "scheduler": {"type": "warmup_schedule", "name": "cosine"}}
    data = section(card, "Data: `UltraFeedbackPreferenceDataModule`")
    assert "path: HuggingFaceH4/ultrafeedback_binarized" in data and "num_train: 2000" in data
    model = section(card, "Model: `pretrained`")
    assert "name_or_path: EleutherAI/pythia-1b" in model and "r: 16" in model
    metrics = section(card, "Final validation metrics").strip().splitlines()
    assert metrics == ["| metric | value |", "|---|---|", "| `val/loss` | 0.6931 |",
                       "| `val/rewards/accuracies` | 0.7500 |"]
    assert section(card, "Reproduce").strip() == f"```bash\n{COMMAND}\n```"


def test_a_model_from_scratch_or_a_local_path_has_no_base_model(tmp_path):
    tiny = {"module": {"_target_": "src.modules.ce.CEModule"},
            "model": {"_target_": "src.modules.backbones.tiny_llama", "_partial_": True, "hidden_size": 32}}
    card = model_card(tiny, {}, "python train.py", 4)
    assert "base_model" not in front_matter(card) and front_matter(card)["tags"] == ["posttrain", "ce"]
    assert "(`tiny_llama`, randomly initialised) trained with the **ce** objective for 4 optimizer steps" in card
    assert "No validation ran." in section(card, "Final validation metrics")
    local = {**DPO_CFG, "model": {**DPO_CFG["model"], "name_or_path": "/models/pythia-1b-sft"}}
    assert "base_model" not in front_matter(model_card(local, {}, COMMAND, 1))

    path = write_model_card(tmp_path, tiny, {}, "python train.py", 4)
    assert path == tmp_path / "README.md" and path.read_text() == card


def test_the_training_curves_are_shown_when_given():
    assert "## Training curves" not in model_card(DPO_CFG, {}, COMMAND, 1)
    card = model_card(DPO_CFG, {}, COMMAND, 1, curves="curves.png")
    assert section(card, "Training curves").strip() == "![training and validation curves](curves.png)"
