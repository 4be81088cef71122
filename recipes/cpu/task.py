# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
r"""The CPU tier's tiny verifiable task, tokenizer and model, all built locally (no hub).

Task ("copy the digit"): the prompt shows one digit d; the answer format is ``\boxed{d}``.

* Reward (graded, so a random model's rollouts differ within a group), from the last complete ``\boxed{...}``:
  ``1.0`` when it holds exactly d; ``0.5`` when it holds a single other digit (the answer format without the
  answer); ``0.2`` when there is no such box but d appears somewhere in the response; ``0.0`` otherwise.
  A random 16-token sample over the 26-token vocabulary contains d about half of the time and almost never a
  boxed digit, so the random model's mean reward is about 0.1 and GRPO has signal from step one. The order
  (right answer > well-formed wrong answer > digit somewhere) keeps the cheapest non-answer, writing long runs of
  digits, below a well-formed answer: with 0.5 for "d anywhere", long digit-filled responses out-scored every
  answer short of a correct copy, and a policy could raise its reward by length alone.
* Expert traces (TRAPO's ``extra_info.expert_solutions``): ``d\n\n\boxed{d}`` (6 tokens + EOS) and
  ``\boxed{d}`` (3 tokens + EOS), well inside the 16-token response budget, so a policy that imitates them ends
  with EOS instead of running into the length cap.
* Tokenizer: one token per character, plus the single tokens ``\boxed{``, ``<|im_start|>``, ``<|im_end|>``,
  ``user``, ``assistant``, ``copy`` and a ChatML-style chat template.
* Model: a randomly initialised Llama (2 layers, hidden 64, 2 attention heads and 1 KV head of size 32, about
  76k parameters). Head size 32 is the smallest vLLM's CPU attention accepts (it supports 32, 64, 80 and up), so
  the same model serves both the vLLM rollout and the trainer. Not Qwen2: transformers 5
  forces ``Qwen2Tokenizer`` (and its byte-level pre-tokenizer) on any qwen2 model directory, which would
  discard the character tokenizer above.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

DATA_SOURCE = "trustrl/copy_digit"
DIGITS = "0123456789"
# Response alphabet besides the digits: letters and the answer-format pieces.
OTHER_SYMBOLS = ["\\boxed{", "}", " ", "a", "b", "c", "x", "="]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
WORDS = ["user", "assistant", "copy", "\n", ":"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_BOX = re.compile(r"\\boxed\{([^{}]*)\}")


def vocabulary() -> list[str]:
    return SPECIAL + WORDS + list(DIGITS) + OTHER_SYMBOLS


def build_tokenizer(out_dir: str | Path):
    """Word-level tokenizer whose pre-tokenizer isolates the multi-character tokens and single characters."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(vocabulary())}
    multi = sorted((t for t in vocab if len(t) > 1), key=len, reverse=True)
    pattern = "|".join(re.escape(t) for t in multi) + r"|[\s\S]"
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(str(out_dir))
    return tok


def build_model(out_dir: str | Path, seed: int = 0):
    """A random tiny Llama saved with its tokenizer, loadable by verl as ``actor_rollout_ref.model.path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=1024,  # room for the long-response runs (prompt + 256+ tokens)
        tie_word_embeddings=True,
        bos_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out_dir))
    # verl reads generation_config for eos ids; keep it consistent with the tokenizer.
    (out_dir / "generation_config.json").write_text(
        json.dumps({"eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id, "do_sample": True})
    )
    return out_dir


def expert_solutions(digit: str) -> list[str]:
    r"""Two expert traces of a prompt (TRAPO's ``extra_info.expert_solutions``), both ending in ``\boxed{d}``.

    Trace 0, ``d\n\n\boxed{d}``, is 6 tokens (7 with EOS) with one paragraph break (``\n\n``), where TRAPO's
    prefix cut snaps to: its 25% and 50% prefixes are both ``d\n\n`` (3 tokens). Trace 1, ``\boxed{d}``, is 3
    tokens (4 with EOS), the full-trace level of the ``official_code`` preset. Both leave the 16-token response
    budget room to spare, so imitating them never runs into the length cap.
    """
    return [f"{digit}\n\n\\boxed{{{digit}}}", f"\\boxed{{{digit}}}"]


def make_rows(n: int, split: str, seed: int) -> list[dict[str, Any]]:
    """verl parquet rows (``data_source``, chat ``prompt``, ``reward_model.ground_truth``, ``extra_info``)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        digit = DIGITS[(i + rng.randrange(10)) % 10] if split == "train" else DIGITS[i % 10]
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": f"copy:{digit}"}],
                "ability": "copy",
                "reward_model": {"style": "rule", "ground_truth": digit},
                "extra_info": {"split": split, "index": i, "expert_solutions": expert_solutions(digit)},
            }
        )
    return rows


def write_parquet(rows: list[dict[str, Any]], path: str | Path) -> Path:
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)
    return path


def build_task(out_dir: str | Path, n_train: int = 64, n_val: int = 10, seed: int = 0) -> dict[str, Path]:
    """Model, tokenizer, train and val parquet under ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    return {
        "model": build_model(out_dir / "model", seed=seed),
        "train": write_parquet(make_rows(n_train, "train", seed), out_dir / "data" / "train.parquet"),
        "val": write_parquet(make_rows(n_val, "val", seed + 1), out_dir / "data" / "val.parquet"),
    }


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **kwargs):
    r"""Reward of the copy-digit task (verl's ``compute_score`` contract).

    Returns ``{"score", "acc", "pred", "formatted", "contains"}``: ``acc`` is an exact ``\boxed{d}`` answer;
    ``formatted`` whether the last complete box holds a single digit (right or wrong); ``contains`` whether d
    appears anywhere; ``pred`` is the content of the last complete box ("" when there is none).
    Score: 1.0 if ``acc``, else 0.5 if ``formatted``, else 0.2 if ``contains``, else 0.0.
    """
    boxes = _BOX.findall(solution_str)
    pred = boxes[-1] if boxes else ""
    acc = pred == ground_truth
    formatted = len(pred) == 1 and pred in DIGITS
    contains = ground_truth in solution_str
    score = 1.0 if acc else 0.5 if formatted else 0.2 if contains else 0.0
    return {"score": score, "acc": acc, "pred": pred, "formatted": formatted, "contains": contains}
