"""``run_lm_eval`` on a tiny in-memory Llama and an offline lm-eval task: the harness's accuracy equals one computed
here by teacher-forced scoring of each choice, so the wrapper provably scores the model object it was given."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from src.datamodules.toy_tokenizer import toy_tokenizer
from src.eval.engine.lm_eval_harness import flatten_results, run_lm_eval
from src.modules.backbones import apply_lora, tiny_llama

pytest.importorskip("lm_eval")

TASKS = Path(__file__).parents[1] / "assets" / "lm_eval_tasks"
RELATIVE_DATA = "tests/assets/lm_eval_tasks/toy_choice.jsonl"


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> str:
    """The committed YAML with its data path made absolute: ``datasets`` resolves a relative one against the cwd."""
    text = (TASKS / "toy_choice.yaml").read_text()
    assert RELATIVE_DATA in text
    out = tmp_path_factory.mktemp("lm_eval_tasks")
    (out / "toy_choice.yaml").write_text(text.replace(RELATIVE_DATA, str(TASKS / "toy_choice.jsonl")))
    return str(out)


@pytest.fixture(scope="module")
def tok():
    return toy_tokenizer(None)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in (TASKS / "toy_choice.jsonl").read_text().splitlines()]


def choice_logprob(model, tok, context: str, continuation: str) -> float:
    """Sum of log p(continuation tokens | context), as lm-eval's ``TemplateLM._encode_pair`` splits them: encode
    context + continuation, and the continuation is what follows the context's own tokens."""
    ctx = tok.encode(context)
    whole = tok.encode(context + continuation)
    with torch.no_grad():
        logps = model(torch.tensor([whole])).logits[0, :-1].log_softmax(-1)  # (T-1, V): position t predicts t+1
    targets = torch.tensor(whole[len(ctx):])
    return logps[len(ctx) - 1:].gather(-1, targets[:, None]).sum().item()


def reference(model, tok, rows) -> tuple[list[list[float]], float]:
    """Per-choice log-likelihoods and accuracy; the YAML's prompt, and lm-eval's default target_delimiter " "."""
    lls = [
        [choice_logprob(model, tok, f"Question: {r['question']}\nAnswer:", " " + c) for c in r["choices"]]
        for r in rows
    ]
    correct = [max(range(len(ll)), key=ll.__getitem__) == r["label"] for ll, r in zip(lls, rows)]
    return lls, sum(correct) / len(rows)


def test_accuracy_equals_direct_scoring_and_state_is_restored(task_dir, tok, rows):
    model = tiny_llama(tok, hidden_size=32, num_layers=1, num_heads=2)
    model.train()
    model.model.embed_tokens.eval()  # a submodule left in eval on purpose must stay so
    modes = [m.training for m in model.modules()]
    torch.manual_seed(7)
    rng = torch.get_rng_state()

    metrics, samples = run_lm_eval(model, tok, ["toy_choice"], include_path=task_dir, log_samples=True)

    lls, acc = reference(model, tok, rows)
    assert acc == 3 / 8  # the random model's pick; what matters is that the harness agrees
    assert 0.0 <= metrics["toy_choice/acc"] <= 1.0
    assert metrics["toy_choice/acc"] == pytest.approx(acc)
    assert set(metrics) == {"toy_choice/acc", "toy_choice/acc_stderr"}
    assert [s["doc_id"] for s in samples] == list(range(8))
    harness_lls = [[resp[0] for resp in s["filtered_resps"]] for s in samples]
    for got, want in zip(harness_lls, lls):
        assert got == pytest.approx(want, abs=1e-4)
    assert [s["target"] for s in samples] == [r["label"] for r in rows]
    json.dumps(samples)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)  # simple_evaluate reseeds torch; the caller's stream is untouched


def test_peft_model_is_scored_with_its_adapters(task_dir, tok, rows):
    lora = {"r": 4, "target_modules": ["q_proj", "v_proj"]}
    model = apply_lora(tiny_llama(tok, hidden_size=32, num_layers=1, num_heads=2), lora)
    with torch.no_grad():  # LoRA's B starts at zero, where the adapters change nothing; make them count
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    metrics, samples = run_lm_eval(model, tok, ["toy_choice"], include_path=task_dir, log_samples=True)
    lls, acc = reference(model, tok, rows)
    assert 0.0 <= metrics["toy_choice/acc"] <= 1.0
    assert metrics["toy_choice/acc"] == pytest.approx(acc)
    assert samples[0]["filtered_resps"][0][0] == pytest.approx(lls[0][0], abs=1e-4)
    with model.disable_adapter():
        plain_lls, _ = reference(model, tok, rows)
    assert abs(plain_lls[0][0] - lls[0][0]) > 1e-2  # the adapters did change the scores the harness saw
    assert model.training


def test_unknown_task_names_it(task_dir, tok):
    model = tiny_llama(tok, hidden_size=32, num_layers=1, num_heads=2)
    with pytest.raises(ValueError, match=r"'toy_choise'.*toy_choice.*include_path"):
        run_lm_eval(model, tok, ["toy_choise"], include_path=task_dir)


def test_missing_lm_eval_says_how_to_install(monkeypatch, tok):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # makes `import lm_eval` raise ImportError
    with pytest.raises(ImportError, match="pip install lm-eval"):
        run_lm_eval(torch.nn.Linear(1, 1), tok, ["toy_choice"])


def test_flatten_results_names():
    results = {
        "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.1},
        "arc_easy": {"alias": "arc_easy", "sample_len": 8, "acc,none": 0.5, "acc_stderr,none": "N/A"},
    }
    assert flatten_results(results) == {
        "gsm8k/exact_match_strict-match": 0.25,
        "gsm8k/exact_match_strict-match_stderr": 0.1,
        "arc_easy/acc": 0.5,
    }


def test_no_project_file_shadows_an_installed_package():
    """Run from the project folder (``python eval.py`` puts it first on sys.path), ``import evaluate`` must get
    Hugging Face's package (lm-eval loads metrics through it), and no top-level script may take the name of any
    installed distribution's top-level module."""
    import importlib.metadata
    import subprocess
    import sys

    from tests.helpers import ROOT

    out = subprocess.run([sys.executable, "-c", "import evaluate; print(evaluate.__file__)"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert "site-packages" in out.stdout and str(ROOT / "evaluate.py") not in out.stdout
    installed = {name for dist in importlib.metadata.distributions()
                 for name in (dist.read_text("top_level.txt") or "").split()}
    scripts = {p.stem for p in ROOT.glob("*.py")}
    assert scripts & installed == set(), scripts & installed
