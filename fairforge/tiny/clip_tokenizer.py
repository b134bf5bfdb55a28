"""A real CLIP tokenizer built offline from the BPE file the `open_clip_torch` package ships.

Why: a text-to-image pipeline needs a tokenizer, and downloading `openai/clip-vit-large-patch14`'s
is impossible here. OpenAI's CLIP vocabulary is fully determined by its BPE merges file: the 256
byte symbols, the same with `</w>`, the first 48,894 merges, and the two special tokens make the
49,408 tokens with the very ids the hub's `vocab.json` has. We write it as `vocab.json` +
`merges.txt` so `CLIPTokenizer.from_pretrained(folder)` reads it like any hub tokenizer.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from fairforge.errors import MissingModelError

N_MERGES = 49152 - 256 - 2  # 48,894: what CLIP's SimpleTokenizer keeps
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map (the order fixes the ids)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def bpe_file() -> Path:
    """open_clip's `bpe_simple_vocab_16e6.txt.gz`, found without importing open_clip (it pulls torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError("the CLIP BPE file needs the `open-clip-torch` package: pip install open-clip-torch")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise MissingModelError(f"{path}: open_clip's BPE vocabulary file is missing")
    return path


def write_clip_tokenizer(folder: Path, model_max_length: int = 77) -> Path:
    """Write vocab.json, merges.txt and the tokenizer configs of CLIP's tokenizer into `folder`."""
    lines = gzip.open(bpe_file(), "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}), encoding="utf-8"
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": model_max_length,
                "bos_token": BOS,
                "eos_token": EOS,
                "unk_token": EOS,
                "pad_token": EOS,
                "do_lower_case": True,
            }
        ),
        encoding="utf-8",
    )
    return folder


VOCAB_SIZE = 256 * 2 + N_MERGES + 2  # 49,408
