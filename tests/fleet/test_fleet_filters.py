"""The fleet's pure parts: names, seeds and the fault mix, every check of the fleet definition,
the owned-name pattern, and the ThingsBoard alarm rules made from the classes."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from typing import Any

import jsonschema
import pytest

from tests.conftest import REPO_ROOT, load_source

MODELS = REPO_ROOT / "files" / "models"
SCHEMA = REPO_ROOT / "device_sim" / "src" / "tinyml_sim" / "schema" / "devices-file.v1.json"


fleet = load_source("plugins/filter/fleet_filters.py")
provision = load_source("plugins/filter/tb_provision_filters.py")
cards_lookup = load_source("plugins/lookup/fleet_model_cards.py")
CARDS: dict[str, Any] = cards_lookup.read_cards(MODELS)
DEFAULTS: dict[str, Any] = {
    "sample_rate_hz": 1.0,
    "publish_min_interval_s": 1.0,
    "publish_max_interval_s": 60.0,
    "health_interval_s": 60.0,
    "alert_rate_factor": 4.0,
    "buffer_size": 100,
    "offline_after_s": 300,
    "faults": [],
    "drift": {"share": 0.0},
    "alarms": [{"type": "Anomaly", "above": 0.8, "for_s": 30, "clear_below": 0.5}],
}
FAULT_TYPES = {"vibration": ["imbalance", "misalignment", "bearing_fault"], "gesture": ["noise"]}


def classes() -> list[dict[str, Any]]:
    return [
        {
            "name": "vibration",
            "model": "vibration-cnn",
            "model_version": "1.0.0",
            "hardware": "esp32",
            "faults": [
                {"type": "bearing_fault", "share": 0.1, "start_s": [10, 30], "ramp_s": 5},
                {"type": "imbalance", "share": 0.05, "start_s": 20},
            ],
            "drift": {"share": 0.2, "start_s": [0, 600], "offset_per_h": 0.02},
        },
        {"name": "gesture", "model": "gesture-cnn", "model_version": "1.0.0", "hardware": "esp32"},
    ]


def problems(hosts: dict[str, dict[str, Any]], cards: dict[str, Any] | None = None) -> list[str]:
    found: list[str] = fleet.fleet_problems(
        list(hosts), hosts, cards or CARDS, DEFAULTS, FAULT_TYPES
    )
    return found


def plan(host: str, counts: dict[str, int]) -> dict[str, Any]:
    resolved = fleet.fleet_resolve_classes(classes(), CARDS, DEFAULTS)
    document: dict[str, Any] = fleet.fleet_host_plan(host, counts, resolved)
    return document


def test_names_seeds_and_the_simulators_schema() -> None:
    document = plan("lab-vm2", {"vibration": 3, "gesture": 2})
    names = [d["name"] for d in document["devices"]]
    assert names == [
        "lab-vm2-vibration-00001",
        "lab-vm2-vibration-00002",
        "lab-vm2-vibration-00003",
        "lab-vm2-gesture-00001",
        "lab-vm2-gesture-00002",
    ]
    assert document == plan("lab-vm2", {"vibration": 3, "gesture": 2})  # deterministic
    assert document["classes"]["vibration"]["window"] == 128  # from the model card
    assert document["classes"]["gesture"]["window"] == 64
    seeds = [d["seed"] for d in document["devices"]]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**31 for s in seeds)
    with_passwords = copy.deepcopy(document)
    for device in with_passwords["devices"]:
        device["password"] = "secret-" + device["name"]
    jsonschema.validate(with_passwords, json.loads(SCHEMA.read_text()))


def test_the_fault_mix_holds_and_survives_scaling() -> None:
    big = plan("h1", {"vibration": 1000})["devices"]
    faults = Counter(d["fault"]["type"] if d["fault"] else None for d in big)
    assert abs(faults["bearing_fault"] - 100) <= 1
    assert abs(faults["imbalance"] - 50) <= 1
    assert abs(sum(1 for d in big if d["drift"]) - 200) <= 1
    for device in big:
        if device["fault"] and device["fault"]["type"] == "bearing_fault":
            assert 10 <= device["fault"]["start_s"] <= 30
            assert device["fault"]["ramp_s"] == 5
    small = plan("h1", {"vibration": 60})["devices"]
    assert small == big[:60]  # scaling never reshuffles the devices that stay
    few = plan("h1", {"vibration": 20})["devices"]
    assert 1 <= sum(1 for d in few if d["fault"]) <= 5  # every prefix has its share
    other_host = plan("h2", {"vibration": 60})["devices"]
    assert [bool(d["fault"]) for d in other_host] != [bool(d["fault"]) for d in small]


def test_a_good_fleet_has_no_problems() -> None:
    hosts: dict[str, dict[str, Any]] = {
        "lab-vm1": {"fleet_classes": classes(), "fleet_devices": {"vibration": 5}},
        "lab-vm2": {"fleet_classes": classes(), "fleet_devices": {"gesture": 0}},
        "lab-vm3": {"fleet_classes": classes()},
    }
    assert problems(hosts) == []


def mutated(change: Any, host: str = "lab-vm2") -> list[str]:
    hosts = {
        "lab-vm1": {"fleet_classes": classes(), "fleet_devices": {"vibration": 5}},
        "lab-vm2": {"fleet_classes": classes(), "fleet_devices": {"vibration": 2, "gesture": 1}},
    }
    change(hosts[host])
    if host == "lab-vm1":
        hosts["lab-vm2"]["fleet_classes"] = hosts["lab-vm1"]["fleet_classes"]
    return problems(hosts)


def first_class(host: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = host["fleet_classes"][0]
    return found


CASES: list[tuple[str, Any, str, list[str]]] = [
    (
        "unknown class",
        lambda h: h["fleet_devices"].update(robot=1),
        "lab-vm2",
        ["fleet_devices.robot", "unknown class"],
    ),
    (
        "negative count",
        lambda h: h["fleet_devices"].update(vibration=-1),
        "lab-vm2",
        ["fleet_devices.vibration", "got -1"],
    ),
    ("count as text", lambda h: h["fleet_devices"].update(vibration="3"), "lab-vm2", ["got '3'"]),
    ("count as bool", lambda h: h["fleet_devices"].update(vibration=True), "lab-vm2", ["got True"]),
    (
        "count too large",
        lambda h: h["fleet_devices"].update(vibration=100000),
        "lab-vm2",
        ["above 99999"],
    ),
    (
        "counts not a mapping",
        lambda h: h.update(fleet_devices=["vibration"]),
        "lab-vm2",
        ["fleet_devices", "must map"],
    ),
    (
        "classes differ",
        lambda h: first_class(h).update(sample_rate_hz=2.0),
        "lab-vm2",
        ["fleet_classes", "differs from host lab-vm1"],
    ),
    (
        "unknown model",
        lambda h: first_class(h).update(model_version="2.0.0"),
        "lab-vm1",
        ["fleet_classes[vibration].model", "vibration-cnn 2.0.0"],
    ),
    (
        "bad version",
        lambda h: first_class(h).update(model_version="latest"),
        "lab-vm1",
        ["model_version"],
    ),
    (
        "unknown hardware",
        lambda h: first_class(h).update(hardware="stm32"),
        "lab-vm1",
        ["hardware", "'stm32' is not a target"],
    ),
    (
        "arena over budget",
        lambda h: first_class(h).update(ram_budget_bytes=1024),
        "lab-vm1",
        ["3744 bytes of tensor arena", "1024"],
    ),
    (
        "flash over budget",
        lambda h: first_class(h).update(flash_budget_bytes=1024),
        "lab-vm1",
        ["7688 bytes of flash"],
    ),
    (
        "budget above the target",
        lambda h: first_class(h).update(ram_budget_bytes=10**9),
        "lab-vm1",
        ["ram_budget_bytes", "more than"],
    ),
    ("window", lambda h: first_class(h).update(window=64), "lab-vm1", ["window", "takes 128"]),
    (
        "fault of another model",
        lambda h: first_class(h)["faults"].append({"type": "noise", "share": 0.1}),
        "lab-vm1",
        ["faults[2].type", "'noise'"],
    ),
    (
        "shares above one",
        lambda h: first_class(h)["faults"][0].update(share=0.99),
        "lab-vm1",
        ["shares add up to 1.04"],
    ),
    (
        "bad start",
        lambda h: first_class(h)["faults"][0].update(start_s=[30, 10]),
        "lab-vm1",
        ["faults[0].start_s"],
    ),
    (
        "clear above raise",
        lambda h: first_class(h).update(alarms=[{"type": "A", "above": 0.5, "clear_below": 0.7}]),
        "lab-vm1",
        ["clear_below", "above the raise threshold"],
    ),
    (
        "alarm twice",
        lambda h: first_class(h).update(alarms=[{"type": "A", "above": 1, "clear_below": 0}] * 2),
        "lab-vm1",
        ["defined twice"],
    ),
    (
        "bad severity",
        lambda h: first_class(h).update(
            alarms=[{"type": "A", "severity": "HIGH", "above": 1, "clear_below": 0}]
        ),
        "lab-vm1",
        ["severity"],
    ),
    (
        "bad class name",
        lambda h: first_class(h).update(name="Vibration!"),
        "lab-vm1",
        ["name", "must match"],
    ),
    (
        "unknown key",
        lambda h: first_class(h).update(sampling=3),
        "lab-vm1",
        ["unknown keys sampling"],
    ),
    (
        "sample rate",
        lambda h: first_class(h).update(sample_rate_hz=500),
        "lab-vm1",
        ["sample_rate_hz", "at most 100"],
    ),
    (
        "publish intervals",
        lambda h: first_class(h).update(publish_max_interval_s=0.5, publish_min_interval_s=2),
        "lab-vm1",
        ["publish_max_interval_s"],
    ),
    (
        "class twice",
        lambda h: h["fleet_classes"].append(classes()[0]),
        "lab-vm1",
        ["fleet_classes[vibration]", "defined twice"],
    ),
]


@pytest.mark.parametrize(
    ("change", "host", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_problem_names_host_and_key(change: Any, host: str, fragments: list[str]) -> None:
    found = mutated(change, host)
    assert found, "no problem reported"
    assert any(all(f in p for f in fragments) and p.startswith("host lab-vm") for p in found), found


def test_duplicate_device_names_across_hosts() -> None:
    twin = {**classes()[0], "name": "vm1-vibration"}
    hosts = {
        "lab-vm1": {"fleet_classes": [*classes(), twin], "fleet_devices": {"vibration": 2}},
        "lab": {"fleet_classes": [*classes(), twin], "fleet_devices": {"vm1-vibration": 1}},
    }
    (found,) = problems(hosts)
    assert found.startswith("host lab: fleet_devices.vm1-vibration: duplicate device names")
    assert "lab-vm1-vibration-00001 is also a device of host lab-vm1" in found


def test_a_card_that_exceeds_its_target() -> None:
    cards = copy.deepcopy(CARDS)
    cards["vibration-cnn-1.0.0"]["arena_bytes"] = 200_000  # more than any target's RAM
    hosts = {"lab-vm1": {"fleet_classes": classes(), "fleet_devices": {"vibration": 1}}}
    (found,) = problems(hosts, cards)
    assert (
        "host lab-vm1: fleet_classes[vibration].model: model vibration-cnn 1.0.0 needs 200000"
        in found
    )
    assert "98304 bytes (esp32 ram_bytes in the card)" in found


def test_invalid_host_names_are_refused() -> None:
    hosts = {"bad host": {"fleet_classes": classes(), "fleet_devices": {"vibration": 1}}}
    (found,) = problems(hosts)
    assert "device names such as bad host-vibration-00001 would not match" in found


def test_the_owned_name_pattern() -> None:
    pattern = re.compile(fleet.fleet_name_pattern(["lab-vm1", "lab.vm2"], ["vibration"]))
    assert pattern.fullmatch("lab-vm1-vibration-00042")
    assert pattern.fullmatch("lab.vm2-vibration-00001")
    assert not pattern.fullmatch("labxvm2-vibration-00001")  # dots are literal
    assert not pattern.fullmatch("lab-vm1-gesture-00001")
    assert not pattern.fullmatch("lab-vm1-vibration-0001")
    assert not pattern.fullmatch("tinyml-bridge")
    nothing = re.compile(fleet.fleet_name_pattern([], ["vibration"]))
    assert not nothing.fullmatch("lab-vm1-vibration-00001")


def test_alarm_rules_in_thingsboard_form() -> None:
    rules = provision.tb_alarm_rules(
        [
            {"type": "Anomaly", "severity": "MAJOR", "above": 0.8, "for_s": 10, "clear_below": 0.4},
            {"type": "Slow", "key": "inference_us", "above": 500, "clear_below": 300},
        ],
        "vibration",
    )
    anomaly, slow = rules
    create = anomaly["createRules"]["MAJOR"]["condition"]
    assert create["spec"] == {
        "type": "DURATION",
        "unit": "SECONDS",
        "predicate": {"defaultValue": 10, "userValue": None, "dynamicValue": None},
    }
    predicate = create["condition"][0]
    assert predicate["key"] == {"type": "TIME_SERIES", "key": "anomaly_score"}
    assert predicate["predicate"]["operation"] == "GREATER"
    clear = anomaly["clearRule"]["condition"]["condition"][0]["predicate"]
    assert (clear["operation"], clear["value"]["defaultValue"]) == ("LESS", 0.4)
    assert slow["createRules"]["MAJOR"]["condition"]["spec"] == {"type": "SIMPLE"}
    assert (
        anomaly["id"]
        == provision.tb_alarm_rules(
            [{"type": "Anomaly", "above": 1, "clear_below": 0}], "vibration"
        )[0]["id"]
    )
    assert (
        anomaly["id"]
        != provision.tb_alarm_rules([{"type": "Anomaly", "above": 1, "clear_below": 0}], "gesture")[
            0
        ]["id"]
    )


def test_model_cards_must_match_their_file_name(tmp_path: Any) -> None:
    card = json.loads((MODELS / "gesture-cnn-1.0.0.json").read_text())
    (tmp_path / "gesture-cnn-2.0.0.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"describes gesture-cnn-1\.0\.0"):
        cards_lookup.read_cards(tmp_path)
    assert set(CARDS) == {"gesture-cnn-1.0.0", "vibration-cnn-1.0.0"}
