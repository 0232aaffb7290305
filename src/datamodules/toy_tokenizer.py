"""A small byte-level BPE trained on toy-world text and the Alpaca prompts, wrapped as a ``PreTrainedTokenizerFast``
with a chat template.

It lives with the DataModules rather than in ``src/toyworld`` so that the toy world (``tasks.py``) depends on nothing
here: the tokenizer needs both the generated text and the prompt templates the toy DataModules render.

Training takes about a second and is deterministic, so it is built on first use and cached on disk
(``$POSTTRAIN_CACHE`` or ``~/.cache/posttrain``) instead of being committed as a binary blob.
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from src.datamodules.templates import ALPACA_PROMPT, ALPACA_PROMPT_NO_INPUT
from src.toyworld.tasks import make_corpus, make_problems

VERSION = "v1"
VOCAB_SIZE = 1024
SPECIAL = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "<|end|>", "unk_token": "<unk>"}
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
# Every turn ends with <|end|> (the EOS), so generation stops at the end of an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _training_text() -> list[str]:
    problems = make_problems(3000, "train", seed=1234)
    text = [p.prompt for p in problems] + [r for p in problems for r in p.responses]
    text += make_corpus(500, "train", seed=4321)
    text += [ALPACA_PROMPT, ALPACA_PROMPT_NO_INPUT]
    return text


def train_toy_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL.values()) + ROLE_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any text stays encodable, real data included
        show_progress=False,
    )
    tok.train_from_iterator(_training_text(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, additional_special_tokens=ROLE_TOKENS, **SPECIAL)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def toy_tokenizer(cache_dir: str | os.PathLike | None = None) -> PreTrainedTokenizerFast:
    """Load the cached toy tokenizer, training and caching it on first use."""
    root = Path(cache_dir or os.environ.get("POSTTRAIN_CACHE", Path.home() / ".cache" / "posttrain"))
    path = root / f"toy_tokenizer_{VERSION}"
    if (path / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(path)
    tokenizer = train_toy_tokenizer()
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")  # atomic publish: parallel test workers may race
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(path)
    except OSError:
        pass  # another process won the race; its copy is identical
    return PreTrainedTokenizerFast.from_pretrained(path)
