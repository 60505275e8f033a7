"""One story in the config (issue 24): every default in config/schema.yaml is the value
config/config.yaml sets, so a key left out of a user's config means what the shipped
config says."""

from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

# keys whose shipped value is the default run's content, not a default: an empty default
# means "none", side_effects.masks names contexts of the default run, and a context
# plant is the second of the two plants the default run ships
CONTENT = {"models", "contexts", "side_effects.masks",
           # the default run compares a race direction with the Wanda mask; the schema's
           # default keeps directions out of configs that do not ask (the paper's)
           "localization.directions.depths"}
PLANT_CONTENT = (".plant.scope", ".plant.contexts")
# keys one plant sets apart from the schema's default (none since both plants write at 0.2:
# docs/design.md, "Masks of 10% per group; both plants at strength 0.2")
PLANT_OWN: set[str] = set()


def defaults(schema: dict, config: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(key path, schema default, config.yaml value) for every key config.yaml sets."""
    if not isinstance(config, dict):
        return
    for key, sub in (schema.get("properties") or {}).items():
        where = f"{path}.{key}" if path else key
        if key not in config:
            continue
        if "default" in sub and not isinstance(sub["default"], dict):
            yield where, sub["default"], config[key]
        yield from defaults(sub, config[key], where)


def model_entries() -> Iterator[tuple[str, Any, Any]]:
    """The same for each entry of config.yaml's models list (and its plant)."""
    entry = SCHEMA["properties"]["model"]
    for i, m in enumerate(CONFIG["models"]):
        yield from defaults(entry, m, f"models[{i}]")


def test_every_schema_default_is_the_shipped_value():
    pairs = [p for p in [*defaults(SCHEMA, CONFIG), *model_entries()]
             if p[0] not in CONTENT | PLANT_OWN and not p[0].endswith(PLANT_CONTENT)]
    assert len(pairs) > 40  # the walk reaches the nested keys
    differ = [f"{k}: schema {d!r}, config.yaml {v!r}" for k, d, v in pairs if d != v]
    assert not differ, "config/schema.yaml's defaults differ from config/config.yaml:\n" + "\n".join(differ)


@pytest.mark.parametrize("key", sorted(CONTENT))
def test_content_keys_default_to_none(key):
    node = SCHEMA
    for part in key.split("."):
        node = node["properties"][part]
    assert node["default"] == []
