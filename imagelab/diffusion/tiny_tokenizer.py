"""A small CLIP BPE tokenizer written in the files SD 1.5 ships in `tokenizer/`.

The real CLIP vocabulary has 49408 entries; the tiny one keeps CLIP's layout (the 256
byte-level characters, the same characters with the end-of-word marker `</w>`, one entry
per merge, then `<|startoftext|>` and `<|endoftext|>`) but learns its merges from a built-in
word list only, until each of those words is one token (about 500 merges, 1024 entries), so
prompts about animals and styles tokenise as they would with the real vocabulary.
"""

import collections
import json
from pathlib import Path

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
MODEL_MAX_LENGTH = 77

_CORPUS_WORDS = (
    "a an the of in on by with and at photo picture painting portrait drawing style oil "
    "canvas impressionist starry night water lilies garden monet van gogh landscape city "
    "sky sea river forest mountain field flowers sunset sunrise light dark blue green red "
    "yellow orange purple white black golden bright soft detailed sharp high quality "
    "close up wild nature animal cute small large running sitting standing sleeping"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def _learn_merges(words: list[str], num_merges: int) -> list[tuple[str, str]]:
    """Classic BPE (Sennrich et al. 2016) with CLIP's `</w>` suffix; ties broken by pair text."""
    byte_to_char = _bytes_to_unicode()
    counts = collections.Counter(words)
    splits = {}
    for word in counts:
        symbols = [byte_to_char[b] for b in word.encode("utf-8")]
        symbols[-1] += END_OF_WORD
        splits[word] = symbols
    merges = []
    for _ in range(num_merges):
        pair_counts = collections.Counter()
        for word, symbols in splits.items():
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += counts[word]
        if not pair_counts:
            break
        best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
        merges.append(best)
        for word, symbols in splits.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[word] = merged
    return merges


def write_tiny_clip_tokenizer(out_dir: str | Path, extra_words: list[str], num_merges: int = 5000) -> Path:
    """Write vocab.json, merges.txt, special_tokens_map.json and tokenizer_config.json.

    Returns the folder. The vocabulary size is 512 + len(merges) + 2; merging stops early once
    every word is a single token.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    words = _CORPUS_WORDS.split() + [w for name in extra_words for w in name.replace("_", " ").split()]
    merges = _learn_merges(words, num_merges)
    base_chars = list(_bytes_to_unicode().values())
    tokens = base_chars + [c + END_OF_WORD for c in base_chars] + ["".join(m) for m in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    vocab = {token: i for i, token in enumerate(tokens)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (out_dir / "merges.txt").write_text(merges_text, encoding="utf-8")
    special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": EOS_TOKEN, "unk_token": EOS_TOKEN}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "do_lower_case": True,
        "add_prefix_space": False,
        "errors": "replace",
        **special,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out_dir
