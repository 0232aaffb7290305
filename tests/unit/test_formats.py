"""Format detection on real-looking rows of every public format, the per-row mapping, and the unknown-schema errors."""

from __future__ import annotations

import pytest

from src.datamodules.formats import (
    Format,
    detect_preference_format,
    detect_sft_format,
    detection_line,
    single_turn_format,
)
from src.datamodules.rows import PairParts, Turn, preference_example, sft_example

U, A, S = "user", "assistant", "system"
SRC = "data.path=rows.jsonl"


def msgs(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


# --- SFT -------------------------------------------------------------------------------------------------------------

# (row shaped like the dataset, detected name, field mapping, the row as a Turn)
SINGLE_TURN = [
    ({"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat well. 2. Sleep. 3. Move."},
     "alpaca", {"prompt": "instruction", "input": "input", "response": "output"},
     Turn("Give three tips for staying healthy.", "", "1. Eat well. 2. Sleep. 3. Move.")),
    ({"instruction": "Summarise the text.", "context": "Virgin Australia began in 2000.",
      "response": "It began in 2000.", "category": "summarization"},  # Dolly
     "instruction/response", {"prompt": "instruction", "input": "context", "response": "response"},
     Turn("Summarise the text.", "Virgin Australia began in 2000.", "It began in 2000.")),
    ({"instruction": "Name a prime.", "response": "7 is prime."},  # what data=alpaca once needed response_field for
     "instruction/response", {"prompt": "instruction", "response": "response"},
     Turn("Name a prime.", "", "7 is prime.")),
    ({"prompt": "The capital of France is", "completion": " Paris."},  # TRL prompt-completion
     "prompt/completion", {"prompt": "prompt", "response": "completion"},
     Turn("The capital of France is", "", " Paris.")),
    ({"prompt": "Say hi.", "response": "Hi!"}, "prompt/response", {"prompt": "prompt", "response": "response"},
     Turn("Say hi.", "", "Hi!")),
    ({"question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
      "answer": "48 / 2 = 24 in May.\n#### 72"},  # GSM8K
     "question/answer", {"prompt": "question", "response": "answer"},
     Turn("Natalia sold 48 clips in April and half as many in May. How many in all?", "",
          "48 / 2 = 24 in May.\n#### 72")),
    ({"query": "What is 2 + 3?", "response": "2 + 3 = 5. The answer is: 5", "type": "GSM_Rephrased",
      "original_question": "2 + 3?"},  # MetaMathQA
     "query/response", {"prompt": "query", "response": "response"},
     Turn("What is 2 + 3?", "", "2 + 3 = 5. The answer is: 5")),
    ({"problem": "Solve x + 1 = 3.", "solution": "x = \\boxed{2}", "level": "Level 1"},  # MATH
     "problem/solution", {"prompt": "problem", "response": "solution"}, Turn("Solve x + 1 = 3.", "", "x = \\boxed{2}")),
    ({"input": "Translate to French: cat", "output": "chat"}, "input/output", {"prompt": "input", "response": "output"},
     Turn("Translate to French: cat", "", "chat")),
]


@pytest.mark.parametrize("row, name, fields, turn", SINGLE_TURN, ids=[case[1] for case in SINGLE_TURN])
def test_single_turn_sft_formats(row, name, fields, turn):
    fmt = detect_sft_format([row, row], SRC)
    assert (fmt.name, fmt.fields) == (name, fields)
    assert sft_example(row, fmt) == turn


def test_messages_win_over_a_duplicate_prompt_field():
    """UltraFeedback's train_sft rows carry both ``prompt`` and the full ``messages``."""
    messages = msgs((S, "Be brief."), (U, "Hi"), (A, "Hello."), (U, "Bye"), (A, "Goodbye."))
    row = {"prompt": "Hi", "prompt_id": "ab12", "messages": messages}
    fmt = detect_sft_format([row], SRC)
    assert fmt == Format("messages", {"messages": "messages"})
    assert sft_example(row, fmt) == messages
    assert detection_line(fmt, [row]) == "messages (messages=messages); unused fields: ['prompt', 'prompt_id']"


def test_sharegpt_conversations_become_messages():
    row = {"id": "x1", "conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Hi"},
                                         {"from": "gpt", "value": "Hello!"}]}
    fmt = detect_sft_format([row], SRC)
    assert fmt == Format("sharegpt", {"messages": "conversations"})
    assert sft_example(row, fmt) == msgs((S, "Be kind."), (U, "Hi"), (A, "Hello!"))
    bad = {"conversations": [{"from": "narrator", "value": "Once"}, {"from": "gpt", "value": "upon"}]}
    assert sft_example(bad, fmt) == "malformed_message"


def test_sft_rows_that_are_dropped_say_why():
    alpaca = single_turn_format("instruction", "output", "input")
    assert sft_example({"instruction": "q"}, alpaca) == "missing_field"
    assert sft_example({"instruction": "q", "output": "  "}, alpaca) == "empty_response"
    assert sft_example({"instruction": "q", "input": 3, "output": "a"}, alpaca) == "missing_field"
    chat = Format("messages", {"messages": "messages"})
    assert sft_example({"messages": []}, chat) == "missing_field"
    assert sft_example({"messages": [{"role": U}]}, chat) == "malformed_message"
    assert sft_example({"messages": msgs((U, "q"), (A, " "))}, chat) == "empty_response"


def test_unknown_sft_schema_names_the_fields_found_and_expected():
    with pytest.raises(ValueError) as error:
        detect_sft_format([{"title": "A poem", "body": "Roses are red", "n": 3}], SRC)
    assert str(error.value) == (
        "data.path=rows.jsonl: unknown SFT format: its rows have the fields ['title', 'body', 'n']; expected a list "
        "of {role, content} or ShareGPT {from, value} turns under one of ['messages', 'conversations', "
        "'conversation'], or a prompt field (one of ['instruction', 'prompt', 'question', 'query', 'problem', "
        "'input']) with a response field (one of ['output', 'response', 'completion', 'answer', 'solution']); or "
        "name yours with data.instruction_field=<field> data.response_field=<field>")


def test_preference_rows_given_as_sft_point_at_prefs_file():
    with pytest.raises(ValueError, match=r"^data\.path=rows\.jsonl: unknown SFT format \(these look like preference "
                                         r"pairs: use data=prefs_file\): its rows have the fields \['prompt', "
                                         r"'chosen', 'rejected'\]"):
        detect_sft_format([{"prompt": "q", "chosen": "a", "rejected": "b"}], SRC)


# --- preferences -----------------------------------------------------------------------------------------------------


def test_flat_pairs_trl_standard_form():
    row = {"prompt": "What color is the sky?", "chosen": "It is blue.", "rejected": "It is green."}
    fmt = detect_preference_format([row], SRC)
    assert fmt == Format("flat", {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"})
    assert preference_example(row, fmt) == PairParts("What color is the sky?", "It is blue.", "It is green.")
    assert preference_example({**row, "rejected": "It is blue."}, fmt) == "identical_responses"
    assert preference_example({**row, "chosen": " "}, fmt) == "empty_response"
    assert preference_example({**row, "prompt": None}, fmt) == "missing_field"


def test_flat_pairs_with_a_question_field_orca_dpo():
    row = {"system": "", "question": "Is 7 prime?", "chosen": "Yes, 7 is prime.", "rejected": "No."}
    fmt = detect_preference_format([row], SRC)
    assert fmt.fields == {"prompt": "question", "chosen": "chosen", "rejected": "rejected"}
    assert detection_line(fmt, [row]) == ("flat (prompt=question, chosen=chosen, rejected=rejected); "
                                          "unused fields: ['system']")
    assert preference_example(row, fmt) == PairParts("Is 7 prime?", "Yes, 7 is prime.", "No.")


def test_conversational_pairs_with_an_implicit_prompt():
    """UltraFeedback binarized: both conversations repeat the prompt turns; the shared prefix is the prompt."""
    prompt = msgs((U, "Say 0."), (A, "0."), (U, "What is 0 + 1?"))
    row = {"prompt": "What is 0 + 1?", "chosen": prompt + msgs((A, "1.")), "rejected": prompt + msgs((A, "2.")),
           "score_chosen": 9.0}
    fmt = detect_preference_format([row], SRC)
    assert fmt == Format("conversational", {"chosen": "chosen", "rejected": "rejected"},
                         "the prompt is the shared prefix of the two conversations")
    assert preference_example(row, fmt) == PairParts(prompt, msgs((A, "1.")), msgs((A, "2.")))


@pytest.mark.parametrize("prompt", ["Hi, who are you?", msgs((S, "Be brief."), (U, "Hi, who are you?"))])
def test_conversational_pairs_with_a_separate_prompt(prompt):
    """TRL's conversational form: ``prompt`` (a string or messages) and the replies alone."""
    row = {"prompt": prompt, "chosen": msgs((A, "An assistant.")), "rejected": msgs((A, "Nobody."))}
    fmt = detect_preference_format([row], SRC)
    assert fmt == Format("conversational", {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"})
    head = msgs((U, prompt)) if isinstance(prompt, str) else prompt
    assert preference_example(row, fmt) == PairParts(head, msgs((A, "An assistant.")), msgs((A, "Nobody.")))
    assert preference_example({**row, "prompt": None}, fmt) == "missing_field"


def test_message_prompt_with_string_replies():
    row = {"prompt": msgs((U, "2 + 2?")), "chosen": "4", "rejected": "5"}
    fmt = detect_preference_format([row], SRC)
    assert fmt.name == "flat"
    assert preference_example(row, fmt) == PairParts(msgs((U, "2 + 2?")), msgs((A, "4")), msgs((A, "5")))


def test_hh_transcripts():
    row = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: 1 + 1?\n\nAssistant: 2.",
           "rejected": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: 1 + 1?\n\nAssistant: 3."}
    fmt = detect_preference_format([row], SRC)
    assert fmt == Format("hh", {"chosen": "chosen", "rejected": "rejected"}, "the prompt is the shared transcript head")
    assert preference_example(row, fmt) == PairParts(msgs((U, "Hi"), (A, "Hello."), (U, "1 + 1?")), msgs((A, "2.")),
                                                     msgs((A, "3.")))
    assert preference_example({**row, "chosen": "\n\nAssistant: no human"}, fmt) == "malformed_transcript"


def test_other_pair_field_names():
    row = {"question": "Why?", "response_j": "Because it is so.", "response_k": "No idea."}  # StackExchange paired
    assert detect_preference_format([row], SRC).fields == {"prompt": "question", "chosen": "response_j",
                                                           "rejected": "response_k"}


def test_unknown_preference_schemas_name_the_fields_found_and_expected():
    expected = ("expected a pair of fields (one of [['chosen', 'rejected'], ['chosen_response', 'rejected_response'], "
                "['response_j', 'response_k']]) holding response strings with a prompt field (one of ['prompt', "
                "'instruction', 'question', 'query', 'input']), message lists (a prompt field optional), or "
                "Anthropic HH transcripts ('\\n\\nHuman: ... \\n\\nAssistant: ...')")
    with pytest.raises(ValueError) as error:
        detect_preference_format([{"text": "a", "label": 1}], SRC)
    assert str(error.value) == f"data.path=rows.jsonl: unknown preference format: its rows have the fields " \
                               f"['text', 'label']; {expected}"
    with pytest.raises(ValueError, match=r"\(these look like SFT rows: use data=sft_file\)"):
        detect_preference_format([{"instruction": "q", "output": "a"}], SRC)
    with pytest.raises(ValueError) as error:
        detect_preference_format([{"chosen": "The sky is blue.", "rejected": "The sky is green."}], SRC)
    assert str(error.value).startswith(
        "data.path=rows.jsonl: unknown preference format: 'chosen' / 'rejected' hold str values with no prompt "
        "field and no Human/Assistant turns (fields ['chosen', 'rejected']); expected a pair of fields")
