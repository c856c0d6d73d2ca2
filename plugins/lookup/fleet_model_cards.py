"""Lookup plugin: the model cards of a models directory, keyed ``<name>-<version>``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: fleet_model_cards
short_description: Read the model cards (files/models/<model>-<version>.json) of a directory
description:
  - Returns one mapping per directory given, C(<name>-<version>) to the parsed card, for every
    C(*.json) file that is a model card (a JSON object with C(name), C(version) and
    C(targets)). Other JSON files are ignored.
  - The key is built from the card's own C(name) and C(version), so a card whose file name
    disagrees with its content is refused.
options:
  _terms:
    description: Model directories (absolute, or relative to the playbook directory).
    required: true
"""

EXAMPLES = r"""
- name: Read the model cards
  ansible.builtin.set_fact:
    fleet_cards: "{{ lookup('fleet_model_cards', fleet_models_dir) }}"
"""

RETURN = r"""
_raw:
  description: One mapping per directory, C(<name>-<version>) to the card.
  type: list
  elements: dict
"""


def read_cards(directory: Path) -> dict[str, dict[str, Any]]:
    """``<name>-<version>`` -> card, for the model cards in ``directory``."""
    if not directory.is_dir():
        raise FileNotFoundError(f"no models directory {directory}")
    cards: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from exc
        if not isinstance(card, dict) or not {"name", "version", "targets"} <= set(card):
            continue
        key = f"{card['name']}-{card['version']}"
        if path.stem != key:
            raise ValueError(f"{path}: the card describes {key}, not {path.stem}")
        cards[key] = card
    return cards


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[Any]:
        self.set_options(var_options=variables, direct=kwargs)
        results = []
        for term in terms:
            path = Path(str(term))
            if not path.is_absolute():
                path = Path(self._loader.get_basedir()) / path
            try:
                results.append(read_cards(path))
            except (OSError, ValueError) as exc:
                raise AnsibleLookupError(f"fleet_model_cards: {exc}") from exc
        return results
