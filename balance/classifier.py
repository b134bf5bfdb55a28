"""The attribute classifier interface: logits in, taxonomy labels and confidences out.

Why one interface: FairFace's 18-logit ResNet, a timm model and a transformers model each name
their labels differently (`East Asian`, `race:Black`, `id2label = {0: "woman", ...}`), but the
balance stage needs one answer per image in the taxonomy's own words. Each backend (see
`backends.py`) only has to say which logit is which label NAME; `LabelMap` maps the names onto
the taxonomy with `Taxonomy.map_label` (never by index) and sums the probabilities of the labels
that land on the same value (East + Southeast Asian -> Asian), so the confidence is the
probability of the taxonomy value, not of one of its parts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fairforge.errors import ConfigError
from fairforge.taxonomy import UNKNOWN, Taxonomy

log = logging.getLogger(__name__)

ATTRIBUTES = ("gender", "race", "age")


@dataclass(frozen=True)
class Head:
    """One attribute's logits: their positions in the model output and their label names."""

    attribute: str
    indices: tuple[int, ...]
    labels: tuple[str, ...]


def parse_heads(
    labels: Sequence[str],
    default_attribute: str | None,
    key: str,
    only: Sequence[str] | None = None,
) -> list[Head]:
    """Group label names (in logit order) into heads.

    A name is `attribute:label` or a bare label of `default_attribute`. `key` is the config key
    path reported when a name cannot be placed.
    """
    by_attr: dict[str, tuple[list[int], list[str]]] = {}
    for i, name in enumerate(labels):
        name = str(name)
        prefix, sep, rest = name.partition(":")
        if sep and prefix.strip().lower() in ATTRIBUTES:
            attribute, label = prefix.strip().lower(), rest.strip()
        elif default_attribute is not None:
            attribute, label = default_attribute, name
        else:
            raise ConfigError(
                f"{key}: label {i} {name!r} names no attribute; write it as 'gender:{name}' "
                f"(or race:/age:) or set {key.rsplit('.', 1)[0]}.attribute"
            )
        idx, names = by_attr.setdefault(attribute, ([], []))
        idx.append(i)
        names.append(label)
    heads = [Head(a, tuple(i), tuple(n)) for a, (i, n) in by_attr.items() if only is None or a in only]
    if not heads:
        raise ConfigError(f"{key}: no labels for the attributes {list(only or ATTRIBUTES)}; labels are {list(labels)}")
    return heads


@dataclass
class LabelMap:
    """Per head, a 0/1 matrix summing classifier-label probabilities into taxonomy values."""

    heads: list[Head]
    taxonomy: Taxonomy
    values: dict[str, tuple[str, ...]] = field(init=False)
    matrices: dict[str, torch.Tensor] = field(init=False)
    #: Per attribute, the classifier labels that land on no taxonomy value.
    unmapped: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.values, self.matrices, self.unmapped = {}, {}, {}
        for head in self.heads:
            vocab = (*self.taxonomy.allowed(head.attribute)[:-1], UNKNOWN)
            matrix = torch.zeros(len(head.labels), len(vocab))
            unmapped = []
            for row, label in enumerate(head.labels):
                value = self.taxonomy.map_label(head.attribute, label)
                matrix[row, vocab.index(value)] = 1.0
                if value == UNKNOWN:
                    unmapped.append(label)
            if unmapped:
                log.warning("%s labels %s map to no taxonomy value: counted as %r", head.attribute, unmapped, UNKNOWN)
                self.unmapped[head.attribute] = unmapped
            self.values[head.attribute] = vocab
            self.matrices[head.attribute] = matrix

    def require(self, attributes: Sequence[str], name: str) -> None:
        """Every label of the heads that verification matches on maps onto the taxonomy.

        An unmapped label (`LABEL_0`, `Caucasian`, `Men`) would count as `unknown` and reject every
        image it wins on, so for a matched attribute it is an error naming the label and the values.
        """
        for attribute in attributes:
            labels = self.unmapped.get(attribute)
            if labels:
                allowed = [*self.taxonomy.allowed(attribute)[:-1]]
                extra = f" (or the race_map keys {sorted(self.taxonomy.race_map)})" if attribute == "race" else ""
                raise ConfigError(
                    f"{name}: {attribute} label(s) {labels} map to no taxonomy value; expected one of {allowed}"
                    f"{extra}. Rename them with `labels:`, or extend the taxonomy's maps"
                )

    def __call__(self, logits: torch.Tensor) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Logits [n, k] -> {attribute: (taxonomy values [n] as str, confidences [n] float32)}."""
        out = {}
        logits = logits.float()
        for head in self.heads:
            matrix = self.matrices[head.attribute].to(logits.device)
            probs = torch.softmax(logits[:, list(head.indices)], dim=1) @ matrix
            conf, arg = probs.max(dim=1)
            vocab = np.asarray(self.values[head.attribute], dtype=object)
            out[head.attribute] = (vocab[arg.cpu().numpy()], conf.cpu().numpy().astype(np.float32))
        return out


class AttributeClassifier:
    """A loaded classifier: the model, how to turn a PIL image into its input, and its label map.

    `forward` returns the raw logits; `predict` returns taxonomy values. The model is put in eval
    mode on the device the caller chooses with `to`.
    """

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        transform: Callable[[Any], torch.Tensor],
        heads: list[Head],
        taxonomy: Taxonomy,
        logits_of: Callable[[Any], torch.Tensor] = lambda out: out,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.model = model.eval()
        self.transform = transform
        self.label_map = LabelMap(heads, taxonomy)
        self.logits_of = logits_of
        self.info = info or {}
        self.device = torch.device("cpu")
        self.autocast_dtype: torch.dtype | None = None
        #: The classifier's reference alignment, (RGB array, 68 landmarks) -> PIL image, applied
        #: before `transform` when a row has landmarks (None: the crop as it is).
        self.align: Callable[[np.ndarray, np.ndarray], Any] | None = None

    @property
    def attributes(self) -> list[str]:
        return [h.attribute for h in self.label_map.heads]

    def to(self, device: torch.device, precision: str = "fp32") -> AttributeClassifier:
        """Move to `device`; `bf16`/`fp16` run under autocast there (CUDA only)."""
        self.device = device
        self.model.to(device)
        self.autocast_dtype = (
            {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision) if device.type == "cuda" else None
        )
        return self

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        if self.autocast_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                return self.logits_of(self.model(batch))
        return self.logits_of(self.model(batch))

    def predict(self, batch: torch.Tensor) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return self.label_map(self.forward(batch))


def pick_device(name: str) -> torch.device:
    """`auto` -> CUDA when present, else CPU; anything else is passed to `torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"balance.device: {exc}") from None
