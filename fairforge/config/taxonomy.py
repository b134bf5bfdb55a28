"""The `taxonomy:` section, shared by every stage's config.

Why its own module: the train and evaluate sections carry the taxonomy too (a stage run by hand
reads the same groups the pipeline does), and they must not import the whole pipeline config to
get it. `PipelineConfig` copies its top-level `taxonomy:` into those sections.
"""

from __future__ import annotations

from pydantic import model_validator

from fairforge.errors import ConfigError
from fairforge.taxonomy import Taxonomy

from .base import StrictModel

_DEFAULT = Taxonomy()


class TaxonomyConfig(StrictModel):
    """Genders, races and age bins, and the maps from finer vocabularies (FairFace's) onto them."""

    genders: list[str] = list(_DEFAULT.genders)
    races: list[str] = list(_DEFAULT.races)
    ages: list[str] = list(_DEFAULT.ages)
    race_map: dict[str, str] = dict(_DEFAULT.race_map)
    gender_map: dict[str, str] = dict(_DEFAULT.gender_map)

    @model_validator(mode="after")
    def _consistent(self) -> TaxonomyConfig:
        """Checked at load time: a map onto a race that is not in `races` fails before any stage runs."""
        Taxonomy.from_config(self.model_dump())
        return self

    def build(self, key: str = "taxonomy") -> Taxonomy:
        """The `Taxonomy` these settings describe; an inconsistent one is a `ConfigError` at `key`."""
        try:
            return Taxonomy.from_config(self.model_dump())
        except ValueError as exc:
            message = str(exc)
            if key != "taxonomy" and message.startswith("taxonomy"):
                message = key + message[len("taxonomy") :]
            raise ConfigError(message) from None
