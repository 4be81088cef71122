# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""A character tokenizer with a ChatML template, saved as a bare tokenizer directory (no model config, no hub).

Only the tokenizer files are saved: transformers 5 forces ``Qwen2Tokenizer`` on a directory whose config says
qwen2, which would replace this one.
"""

from __future__ import annotations

import string
from pathlib import Path

SPECIAL = ["<unk>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_tokenizer(out_dir: str | Path) -> Path:
    """Save the tokenizer under ``out_dir`` and return the directory (load it with verl's ``hf_tokenizer``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable))
    vocab = {tok: i for i, tok in enumerate(SPECIAL + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"<\|im_start\|>|<\|im_end\|>|[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<unk>", unk_token="<unk>", bos_token="<|im_start|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(str(out_dir))
    return Path(out_dir)
