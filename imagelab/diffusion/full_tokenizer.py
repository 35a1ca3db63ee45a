"""A CLIP BPE tokenizer of the real size (49408 entries), written in SD 1.5's `tokenizer/` files.

The real CLIP vocabulary cannot be had offline, so this one is synthetic: the tiny tokenizer's
merges come first (learned from its word list, so prompts about animals and styles still
tokenise into whole words), then synthetic merges of lowercase letters, shortest first
(`a b`, `a b</w>`, ..., `ab c`, ...), until there are CLIP's 48894 merges. The entries keep
CLIP's order and ids: 256 byte characters, the same with `</w>`, one per merge, then
`<|startoftext|>` = 49406 and `<|endoftext|>` = 49407. transformers' CLIPTokenizer reads
exactly 48894 merges (49152 - 256 - 2), so this is also the most it can use.
"""

import itertools
import json
import string
from collections.abc import Iterator
from pathlib import Path

from imagelab.diffusion.tiny_tokenizer import BOS_TOKEN, END_OF_WORD, EOS_TOKEN, write_tiny_clip_tokenizer

CLIP_VOCAB_SIZE = 49408
CLIP_NUM_MERGES = 49152 - 256 - 2  # transformers.CLIPTokenizer reads this many merges


def _synthetic_merges() -> Iterator[tuple[str, str]]:
    """(left, right) pairs whose left part is always a token made by an earlier merge."""
    for length in itertools.count(2):
        for letters in itertools.product(string.ascii_lowercase, repeat=length):
            word = "".join(letters)
            yield word[:-1], word[-1]
            yield word[:-1], word[-1] + END_OF_WORD


def write_full_clip_tokenizer(out_dir: str | Path, extra_words: list[str]) -> Path:
    """Write a 49408-entry CLIPTokenizer folder (model_max_length 77) and return it."""
    out_dir = write_tiny_clip_tokenizer(out_dir, extra_words)
    vocab = json.loads((out_dir / "vocab.json").read_text(encoding="utf-8"))
    merges_lines = (out_dir / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in merges_lines[1:]]
    tokens = [token for token in vocab if token not in (BOS_TOKEN, EOS_TOKEN)]  # in id order
    known = set(tokens)
    for left, right in _synthetic_merges():
        if len(merges) == CLIP_NUM_MERGES:
            break
        if left + right not in known:
            merges.append((left, right))
            tokens.append(left + right)
            known.add(left + right)
    tokens += [BOS_TOKEN, EOS_TOKEN]
    if len(tokens) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"built {len(tokens)} tokens, expected {CLIP_VOCAB_SIZE}")
    vocab = {token: i for i, token in enumerate(tokens)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (out_dir / "merges.txt").write_text(merges_text, encoding="utf-8")
    return out_dir
