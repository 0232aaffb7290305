"""Scores that pick the best of n samples: the policy's own mean log-prob, or a reward model's score."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import torch

from src.datamodules.encode import special_prefix
from src.datamodules.templates import alpaca_prompt
from src.losses.logprobs import IGNORE_INDEX, sequence_logps

log = logging.getLogger(__name__)


@torch.no_grad()
def policy_mean_logprobs(model: torch.nn.Module, tokenizer: Any, prompts: list[str], responses: list[str],
                         batch_size: int = 16, end_tokens: list[int | None] | None = None) -> list[float]:
    """Mean log-prob per response token (T = 1) of each ``response`` after its rendered ``prompt``.

    Prompt and response are tokenized separately and concatenated, as training encodes them. ``end_tokens[i]``, the
    end-of-sequence id that ended response i (None if none did), is scored with it, so a response that ends where the
    model would end it is not ranked like one that runs on. An empty response without one scores ``-inf``.
    """
    end_tokens = end_tokens or [None] * len(responses)
    prefix = special_prefix(tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores: list[float] = []
    try:
        for start in range(0, len(prompts), batch_size):
            encoded = []
            batch = slice(start, start + batch_size)
            for prompt, response, end in zip(prompts[batch], responses[batch], end_tokens[batch]):
                p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
                p = p if p[:len(prefix)] == prefix else prefix + p
                r = tokenizer(response, add_special_tokens=False)["input_ids"] + ([end] if end is not None else [])
                encoded.append((p + r, [IGNORE_INDEX] * len(p) + r))
            width = max(len(ids) for ids, _ in encoded)
            ids = torch.tensor([i + [tokenizer.pad_token_id] * (width - len(i)) for i, _ in encoded], device=device)
            labels = torch.tensor([lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in encoded], device=device)
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in encoded], device=device)
            logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
            mean = sequence_logps(logits, labels, average=True)  # (B,)
            empty = (labels[:, 1:] == IGNORE_INDEX).all(-1)
            scores += mean.masked_fill(empty, float("-inf")).tolist()
    finally:
        model.train(was_training)
    return scores


class RewardModel:
    """A sequence-classification reward model (one score per text), e.g. ``sfairXC/FsfairX-LLaMA3-RM-v0.1``.

    It scores ``(instruction, response)`` rendered with its *own* tokenizer: its chat template as a user/assistant
    pair when it has one, else the Alpaca prompt followed by the response. So a reward model whose tokenizer differs
    from the policy's still reads the text it was trained on (the policy's token ids are never passed to it).
    """

    def __init__(self, path: str, batch_size: int = 8, device: str | None = None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        if self.model.config.num_labels != 1:
            raise ValueError(f"eval.reward_model={path}: a reward model has one output (num_labels=1), "
                             f"this one has {self.model.config.num_labels}")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.tokenizer.pad_token is None:
            raise ValueError(f"eval.reward_model={path}: its tokenizer has neither a pad nor an EOS token")
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.padding_side = "right"
        self.model.to(device or "cpu")
        self.path, self.batch_size = path, batch_size

    def text(self, instruction: str, response: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}], tokenize=False)
        return alpaca_prompt(instruction) + " " + response

    @torch.no_grad()
    def score(self, instructions: list[str], responses: list[str]) -> list[float]:
        texts = [self.text(i, r) for i, r in zip(instructions, responses)]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                   add_special_tokens=False).to(self.model.device)
            scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores


@lru_cache(maxsize=2)
def load_reward_model(path: str) -> RewardModel:
    log.info("loading reward model %s", path)
    return RewardModel(path)
