"""OTA model updates: fetch and verify an announced model once per process, share it."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from jsonschema import ValidationError

from tinyml_sim.modelcard import ModelCard, sha256_hex
from tinyml_sim.models import Classifier, ModelError, ModelRegistry
from tinyml_sim.schemas import validate

MAX_MODEL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Announcement:
    device_class: str
    model: str
    version: str
    sha256: str
    location: str

    @classmethod
    def parse(cls, payload: bytes | bytearray, device_class: str) -> Announcement:
        """Raises ValueError on anything that is not a valid v1 announcement for the class."""
        try:
            doc = json.loads(payload)
            validate("ota-announcement", doc)
        except (UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
            raise ValueError(f"malformed OTA announcement: {exc}") from exc
        if doc["class"] != device_class:
            raise ValueError(f"announcement for class {doc['class']!r}, not {device_class!r}")
        return cls(doc["class"], doc["model"], doc["version"], doc["sha256"], doc["location"])


class OtaLoader:
    """Resolves announcements to shared classifiers; each (sha256, location) is tried once."""

    def __init__(self, registry: ModelRegistry, fetch_timeout_s: float = 30.0) -> None:
        self._registry = registry
        self._timeout = fetch_timeout_s
        self._results: dict[tuple[str, str], asyncio.Future[Classifier]] = {}

    def resolve(self, ann: Announcement, current: ModelCard) -> asyncio.Future[Classifier]:
        key = (ann.sha256, ann.location)
        future = self._results.get(key)
        if future is None:
            future = asyncio.ensure_future(self._load(ann, current))
            self._results[key] = future
        return future

    async def _load(self, ann: Announcement, current: ModelCard) -> Classifier:
        loop = asyncio.get_running_loop()
        data, card_doc = await loop.run_in_executor(None, self._fetch, ann.location)
        if len(data) > MAX_MODEL_BYTES:
            raise ModelError(f"model is {len(data)} bytes, over {MAX_MODEL_BYTES}")
        digest = sha256_hex(data)
        if digest != ann.sha256:
            raise ModelError(f"sha256 mismatch: got {digest}, announced {ann.sha256}")
        if card_doc is not None:
            try:
                card = ModelCard.from_json(card_doc)
            except ValidationError as exc:
                raise ModelError(f"invalid model card: {exc.message}") from exc
            if card.sha256 != digest:
                raise ModelError("the card beside the model describes another file")
        else:
            # No card travelled with the model: it must keep the running model's contract.
            card = current.with_model(ann.version, digest, len(data))
            card = ModelCard.from_json(dict(card.raw, name=ann.model))
        _check_compatible(card, current)
        classifier = self._registry.load(card, data, digest)
        # The digest may name a model this process already runs for another class.
        _check_compatible(classifier.card, current)
        return classifier

    def _fetch(self, location: str) -> tuple[bytes, dict[str, Any] | None]:
        """Blocking: runs in the default executor."""
        url = urlparse(location)
        try:
            if url.scheme == "file":
                return self._fetch_file(Path(unquote(url.path)))
            if url.scheme in ("http", "https"):
                with urllib.request.urlopen(location, timeout=self._timeout) as response:
                    return response.read(MAX_MODEL_BYTES + 1), None
            if url.scheme == "data":
                meta, _, body = location[len("data:") :].partition(",")
                if not meta.endswith(";base64"):
                    raise ModelError("data: URLs must be base64")
                return base64.b64decode(body, validate=True), None
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot fetch {location[:80]}: {exc}") from exc
        raise ModelError(f"unsupported location {location[:80]}")

    def _fetch_file(self, path: Path) -> tuple[bytes, dict[str, Any] | None]:
        root = self._registry.models_dir.resolve()
        path = path.resolve()
        if not path.is_relative_to(root):
            raise ModelError(f"{path} is outside the models directory {root}")
        card_path = path.with_name(path.name.removesuffix(".tflite") + ".json")
        card = json.loads(card_path.read_text()) if card_path.is_file() else None
        return path.read_bytes(), card


def _check_compatible(card: ModelCard, current: ModelCard) -> None:
    if (card.input_shape, card.output_shape, card.device_class) != (
        current.input_shape,
        current.output_shape,
        current.device_class,
    ):
        raise ModelError(
            f"signature {card.device_class} {card.input_shape}->{card.output_shape} differs "
            f"from the running {current.device_class} {current.input_shape}->"
            f"{current.output_shape}"
        )
