#!/usr/bin/python
"""Ansible module: publish one payload to MQTT topics through EMQX's REST API."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: emqx_publish
short_description: Publish a payload to MQTT topics through EMQX (POST /api/v5/publish/bulk)
description:
  - Publishes the same payload to every topic of O(topics), O(batch_size) messages per
    request, with the QoS and retain flag given. An empty payload with O(retain=true)
    clears the retained message of a topic.
  - EMQX answers 202 when a message reached no subscriber; that is not an error (a retained
    message is stored all the same) and the topic is listed in RV(unmatched).
  - Any other per-message failure (reason 131 dispatch error, 144 bad topic, 151 rate limit
    or message over C(mqtt.max_packet_size)) fails the task, naming the topic.
  - Every run publishes, so the task reports a change; in check mode nothing is sent.
options:
  api_url:
    description: Base URL of the EMQX REST API, e.g. C(http://172.18.0.3:18083).
    type: str
    required: true
  api_key:
    description: API key (from C(api_key.bootstrap_file)).
    type: str
    required: true
  api_secret:
    description: Secret of I(api_key).
    type: str
    required: true
  validate_certs:
    description: Verify the server certificate when I(api_url) is https.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each HTTP response.
    type: float
    default: 60
  topics:
    description: Topics to publish to (no wildcards).
    type: list
    elements: str
    required: true
  payload:
    description: The payload, the same for every topic; empty clears a retained message.
    type: str
    default: ""
  payload_encoding:
    description: C(plain), or C(base64) when I(payload) is base64 that EMQX decodes first.
    type: str
    choices: [plain, base64]
    default: plain
  qos:
    description: MQTT QoS.
    type: int
    choices: [0, 1, 2]
    default: 1
  retain:
    description: Publish retained.
    type: bool
    default: false
  batch_size:
    description: Messages per request.
    type: int
    default: 50
author: TinyML fleet project
"""

EXAMPLES = r"""
- name: Announce a model to a device class (retained)
  emqx_publish:
    api_url: "{{ emqx_api_url }}"
    api_key: tinyml-automation
    api_secret: "{{ emqx_api_key_secret }}"
    topics: [tinyml/classes/vibration/ota]
    payload: "{{ announcement | to_json }}"
    qos: 1
    retain: true
  delegate_to: "{{ emqx_api_delegate }}"

- name: Clear the per-device announcements
  emqx_publish:
    api_url: "{{ emqx_api_url }}"
    api_key: tinyml-automation
    api_secret: "{{ emqx_api_key_secret }}"
    topics: "{{ canaries | map('regex_replace', '^(.*)$', 'tinyml/devices/\\1/ota') | list }}"
    payload: ""
    retain: true
"""

RETURN = r"""
published:
  description: Messages EMQX accepted (0 in check mode).
  returned: always
  type: int
unmatched:
  description: Topics whose message reached no subscriber (EMQX reason code 16).
  returned: always
  type: list
  elements: str
payload_bytes:
  description: Size of the payload as published (after base64 decoding).
  returned: always
  type: int
now_ms:
  description: This host's clock when EMQX had taken the last message, ms since the epoch.
  returned: always
  type: int
requests:
  description: HTTP requests made (retries included).
  returned: always
  type: int
"""

import base64  # noqa: E402
import binascii  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.emqx_api import (  # noqa: E402
    EmqxClient,
    EmqxError,
    client_from_params,
    common_argument_spec,
)

NO_SUBSCRIBERS = 16
REASONS = {
    131: "error dispatching the message",
    144: "topic name invalid",
    151: "rate limited, or message over mqtt.max_packet_size",
}


def batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def topic_problem(topic: str) -> str | None:
    if not topic:
        return "empty topic"
    if "+" in topic or "#" in topic:
        return f"{topic}: wildcards cannot be published to"
    return None


def outcome(topics: list[str], results: Any) -> tuple[int, list[str], list[str]]:
    """(published, unmatched topics, errors) from a /publish/bulk answer."""
    published, unmatched, errors = 0, [], []
    items = results if isinstance(results, list) else []
    for index, topic in enumerate(topics):
        item = items[index] if index < len(items) and isinstance(items[index], dict) else {}
        code = item.get("reason_code")
        if code is None:
            published += 1
        elif code == NO_SUBSCRIBERS:
            published += 1
            unmatched.append(topic)
        else:
            reason = REASONS.get(code, item.get("message") or "refused")
            errors.append(f"{topic}: reason code {code}: {reason}")
    return published, unmatched, errors


def publish(
    client: EmqxClient, topics: list[str], message: dict[str, Any], batch_size: int
) -> tuple[int, list[str], list[str]]:
    published, unmatched, errors = 0, [], []
    for batch in batches(topics, batch_size):
        body = [{"topic": topic, **message} for topic in batch]
        _, results = client.request("POST", "/publish/bulk", body=body, expect=(200, 202))
        done, missed, failed = outcome(batch, results)
        published += done
        unmatched += missed
        errors += failed
        if errors:
            break
    return published, unmatched, errors


def main() -> None:
    argument_spec = common_argument_spec()
    argument_spec.update(
        topics={"type": "list", "elements": "str", "required": True},
        payload={"type": "str", "default": ""},
        payload_encoding={"type": "str", "choices": ["plain", "base64"], "default": "plain"},
        qos={"type": "int", "choices": [0, 1, 2], "default": 1},
        retain={"type": "bool", "default": False},
        batch_size={"type": "int", "default": 50},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    topics: list[str] = params["topics"]
    shown = {k: v for k, v in params.items() if k not in ("api_secret", "payload", "topics")}
    shown["topics"] = f"{len(topics)} topics" if len(topics) > 10 else topics
    shown["payload"] = f"{len(params['payload'])} characters"
    invocation = {"module_args": shown}
    problems = [p for p in (topic_problem(t) for t in topics) if p]
    if params["batch_size"] < 1:
        problems.append("batch_size must be at least 1")
    try:
        size = (
            len(base64.b64decode(params["payload"], validate=True))
            if params["payload_encoding"] == "base64"
            else len(params["payload"].encode())
        )
    except (binascii.Error, ValueError):
        problems.append("payload is not base64")
        size = 0
    if problems:
        module.fail_json(msg="; ".join(problems), invocation=invocation)
    result: dict[str, Any] = {"changed": bool(topics), "payload_bytes": size}
    if module.check_mode or not topics:
        module.exit_json(
            published=0,
            unmatched=[],
            requests=0,
            now_ms=int(time.time() * 1000),
            invocation=invocation,
            **result,
        )
    client = client_from_params(params)
    message = {
        "payload": params["payload"],
        "payload_encoding": params["payload_encoding"],
        "qos": params["qos"],
        "retain": params["retain"],
    }
    try:
        published, unmatched, errors = publish(client, topics, message, params["batch_size"])
    except EmqxError as exc:
        module.fail_json(
            msg=str(exc),
            status=exc.status,
            code=exc.code,
            requests=client.requests,
            invocation=invocation,
        )
    if errors:
        module.fail_json(
            msg="; ".join(errors[:10]),
            published=published,
            requests=client.requests,
            invocation=invocation,
        )
    module.exit_json(
        published=published,
        unmatched=unmatched,
        requests=client.requests,
        now_ms=int(time.time() * 1000),
        invocation=invocation,
        **result,
    )


if __name__ == "__main__":
    main()
