"""Recipe schema: round-trips, errors that point at the key, shipped recipes."""

import pytest

from curate.errors import RecipeError
from curate.recipe import ALLOWED_INTERVENTIONS, Recipe, load_recipe, shipped_recipes


def build_recipe_dict(**overrides):
    base = {
        "name": "t",
        "rules": [
            {"concepts": ["flattery", "agreement"], "action": "block", "interventions": ["rebalance", "margin"]},
            {"concepts": "refusal", "action": "amplify", "strength": 0.5},
        ],
        "publish": {"repo_id": "me/x", "license": "cc-by-4.0", "tags": ["dpo"]},
    }
    base.update(overrides)
    return base


def test_round_trip_lossless(tmp_path):
    r = Recipe.from_dict(build_recipe_dict())
    again = Recipe.from_yaml(r.to_yaml())
    assert again == r and again.to_dict() == r.to_dict()
    r.save(tmp_path / "r.yaml")
    assert load_recipe(tmp_path / "r.yaml") == r
    assert r.actions() == {"flattery": "block", "agreement": "block", "refusal": "amplify"}
    assert r.rules[1].interventions == ["upweight"]  # default per action


@pytest.mark.parametrize("name", sorted(shipped_recipes()))
def test_shipped_recipes_load_and_round_trip(name):
    path = shipped_recipes()[name]
    text = path.read_text()
    assert text.startswith("# When to use:")
    r = load_recipe(path)
    assert r.rules and Recipe.from_yaml(r.to_yaml()) == r
    assert r.to_yaml().startswith("# When to use:")  # the leading comment survives a dump


def test_shipped_recipes_cover_the_issue():
    names = set(shipped_recipes())
    assert {
        "length_debiasing.yaml",
        "anti_sycophancy.yaml",
        "no_overstylization.yaml",
        "amplify_safeguards.yaml",
    } <= names
    assert load_recipe("anti_sycophancy").blocked() == ["flattery", "agreement"]
    assert load_recipe("no_overstylization").blocked() == ["markdown", "emoji"]
    assert load_recipe("amplify_safeguards").amplified() == ["refusal"]


@pytest.mark.parametrize(
    "bad, where, lists",
    [
        ({"rules": [{"concepts": ["flattery"], "action": "blok"}]}, "rules[0].action", "'allow', 'block' or 'amplify'"),
        ({"rulez": []}, "rulez", "'rules'"),
        ({"rules": [{"concepts": ["flattery"], "action": "block", "strenght": 1}]}, "rules[0].strenght", "'strength'"),
        ({"rules": [{"concepts": ["flatery"], "action": "block"}]}, "rules[0].concepts[0]", "'flattery'"),
        (
            {"rules": [{"concepts": ["flattery"], "action": "block", "interventions": ["upweight"]}]},
            "rules[0].interventions[0]",
            "'rebalance'",
        ),
        (
            {"rules": [{"concepts": ["flattery"], "action": "block"}, {"concepts": ["flattery"], "action": "amplify"}]},
            "rules[1].concepts[0]",
            "conflicting actions",
        ),
        (
            {"rules": [{"concepts": ["flattery"], "action": "block"}, {"concepts": ["flattery"], "action": "block"}]},
            "rules[1].concepts[0]",
            "duplicated action",
        ),
        (
            {
                "rules": [
                    {"concepts": ["flattery"], "action": "block", "interventions": ["resample"]},
                    {"concepts": ["markdown"], "action": "block"},
                ]
            },
            "rules[0].interventions",
            "'resample' and 'rebalance'",
        ),
        ({"rules": [{"concepts": ["flattery"], "action": "block", "strength": 1.5}]}, "rules[0].strength", "(0, 1]"),
        ({"rules": [{"concepts": ["sae:l15:3"], "action": "block"}]}, "rules[0].concepts[0]", "kind: sae"),
        ({"concepts": [{"kind": "sea"}]}, "concepts[0].kind", "'named' or 'sae'"),
        (
            {"rules": [{"concepts": ["flattery"], "action": "block", "adjust_for": ["markdwn"]}]},
            "rules[0].adjust_for[0]",
            "'markdown'",
        ),
        (
            {
                "rules": [
                    {"concepts": ["flattery"], "action": "block", "interventions": ["filter"], "adjust_for": "all"}
                ]
            },
            "rules[0].adjust_for",
            "'rebalance', 'balance' and 'resample'",
        ),
    ],
)
def test_errors_point_at_the_key_and_list_allowed(bad, where, lists):
    with pytest.raises(RecipeError) as err:
        Recipe.from_dict(bad)
    assert where in str(err.value) and lists in str(err.value), str(err.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="Invalid YAML"):
        Recipe.from_yaml("rules: [")
    with pytest.raises(RecipeError, match="anti_sycophancy.yaml"):
        load_recipe(tmp_path / "nope.yaml")


def test_concepts_checked_against_an_annotated_dataset(annotated):
    r = Recipe.from_dict(build_recipe_dict())
    r.check_concepts(annotated)
    sub = annotated.remove_columns(["chosen__agreement", "rejected__agreement"])
    with pytest.raises(
        RecipeError, match=r"rules\[0\].concepts\[1\]: unknown concept 'agreement'. Known concepts in the data"
    ):
        r.check_concepts(sub)


def test_sae_ids_validate_with_declared_source():
    r = Recipe.from_ids(block=["flattery", "sae:l15:12"])
    assert r.concepts[1].kind == "sae" and r.concepts[1].source == "l15"
    with pytest.raises(RecipeError, match="Active SAE features"):
        r.check_concepts({"flattery", "sae:l15:7"})


def test_allowed_interventions_documented():
    assert ALLOWED_INTERVENTIONS["allow"] == ()
    with pytest.raises(RecipeError, match="none"):
        Recipe.from_dict({"rules": [{"concepts": ["emoji"], "action": "allow", "interventions": ["filter"]}]})


@pytest.mark.parametrize(
    "text, line, key",
    [
        ("rules:\n  - concepts: [flattery]\n    action: amplify\n    action: block\n", 4, "action"),
        ("name: a\nname: b\n", 2, "name"),
        ("rules:\n  - {concepts: [flattery], action: block, strength: 0.5, strength: 1}\n", 2, "strength"),
        ("publish:\n  tags: [a]\n  license: mit\n  tags: [b]\n", 4, "tags"),
    ],
)
def test_a_key_written_twice_is_an_error_naming_it(text, line, key):
    """YAML keeps the last of two equal keys without a word: a rule would silently change its action."""
    with pytest.raises(RecipeError, match=rf"line {line}: the key '{key}' is written twice"):
        Recipe.from_yaml(text)


@pytest.mark.parametrize(
    "action, key, value, allowed",
    [
        ("amplify", "strength", ".inf", "for 'amplify' > 0"),
        ("amplify", "strength", ".nan", "for 'amplify' > 0"),
        ("block", "strength", ".nan", "for 'block' in (0, 1]"),
        ("block", "strength", "-.inf", "for 'block' in (0, 1]"),
        ("block", "alpha", ".inf", ""),
    ],
)
def test_strength_and_alpha_must_be_finite(action, key, value, allowed):
    how = "[steer]" if key == "alpha" else ("[upweight]" if action == "amplify" else "[rebalance]")
    text = f"rules:\n  - concepts: [flattery]\n    action: {action}\n    interventions: {how}\n    {key}: {value}\n"
    with pytest.raises(RecipeError) as err:
        Recipe.from_yaml(text)
    assert f"rules[0].{key}: must be a finite number{', ' + allowed if allowed else ''}; got" in str(err.value)
