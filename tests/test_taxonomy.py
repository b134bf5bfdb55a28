"""The taxonomy: groups, FairFace mappings by name, config loading."""

from __future__ import annotations

import pytest

from fairforge.taxonomy import DEFAULT_TAXONOMY, FAIRFACE_RACES, PGFDD_GROUPS_8, Taxonomy


def test_default_groups_follow_the_benchmarks_order():
    assert DEFAULT_TAXONOMY.groups == (
        "male-Asian", "male-White", "male-Black", "male-Others",
        "female-Asian", "female-White", "female-Black", "female-Others",
    )  # fmt: skip
    assert [DEFAULT_TAXONOMY.group_index(g, r) for g, r in PGFDD_GROUPS_8] == list(range(8))
    assert DEFAULT_TAXONOMY.group_index("unknown", "Asian") == -1


def test_fairface_races_map_by_name():
    mapped = {r: DEFAULT_TAXONOMY.map_label("race", r) for r in FAIRFACE_RACES}
    assert mapped == {
        "White": "White", "Black": "Black", "Latino_Hispanic": "Others", "East Asian": "Asian",
        "Southeast Asian": "Asian", "Indian": "Others", "Middle Eastern": "Others",
    }  # fmt: skip
    assert DEFAULT_TAXONOMY.map_label("race", "east_asian") == "Asian"
    assert DEFAULT_TAXONOMY.map_label("gender", "Female") == "female"
    assert DEFAULT_TAXONOMY.map_label("age", "70+") == "70+"
    assert DEFAULT_TAXONOMY.map_label("race", "Martian") == "unknown"


def test_cells_and_config_round_trip():
    assert len(DEFAULT_TAXONOMY.cells()) == 2 * 4 * 9
    custom = Taxonomy.from_config({"races": ["White", "Black", "Others"], "race_map": {"Indian": "Others"}})
    assert custom.groups[:3] == ("male-White", "male-Black", "male-Others")
    assert Taxonomy.from_config(custom.to_config()) == custom
    with pytest.raises(ValueError, match="unknown key"):
        Taxonomy.from_config({"colours": []})
