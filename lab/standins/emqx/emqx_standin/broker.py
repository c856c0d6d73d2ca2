"""Runs mosquitto as the MQTT side of the stand-in and keeps its auth files in step.

The password and ACL files are rewritten from the store and mosquitto is sent SIGHUP, which
reloads both without dropping connections. A change counts as applied once mosquitto logs
"Reloading config.": it reloads in its main loop, so every CONNECT it reads after that line
is checked against the new files.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
from typing import Any

from .config import Listener, Settings
from .passwords import internal_secret, mosquitto_hash
from .store import Store

LOG = logging.getLogger("emqx_standin.broker")
MQTT_LOG = logging.getLogger("emqx_standin.mosquitto")

LOOPBACK = "127.0.0.1"
INTERNAL_USER = "_standin_cluster"  # the relay's own login; hidden from the API
_SAFE_NAME = re.compile(r"^[^\s:#+]+$")  # what fits in mosquitto's passwd/acl line format


def internal_password(settings: Settings) -> str:
    return internal_secret(settings.cookie, "mqtt-relay")


def covers(wide: str, narrow: str) -> bool:
    """True if every topic matched by filter ``narrow`` is matched by filter ``wide``."""
    w, n = wide.split("/"), narrow.split("/")
    for index, part in enumerate(w):
        if part == "#":
            return True
        if index >= len(n):
            return False
        if part == "+":
            if n[index] == "#":
                return False
            continue
        if part != n[index]:
            return False
    return len(w) == len(n)


def overlaps(a: str, b: str) -> bool:
    """True if some topic could match both filters."""
    x, y = a.split("/"), b.split("/")
    for index in range(max(len(x), len(y))):
        p = x[index] if index < len(x) else None
        q = y[index] if index < len(y) else None
        if p == "#" or q == "#":
            return True
        if p is None or q is None:
            return False
        if p != q and "+" not in (p, q):
            return False
    return True


ACCESS = {"publish": "write", "subscribe": "read", "all": "readwrite"}


def compile_rules(username: str, rules: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """EMQX rules (ordered, first match wins) -> mosquitto ACL lines and warnings.

    mosquitto checks every deny entry before any allow entry and a deny covers all actions,
    so EMQX's order cannot always be expressed. A deny fully covered by an earlier allow of
    the same or a wider action is dead in EMQX and is dropped; other overlaps are warned.
    """
    lines: list[str] = []
    warnings: list[str] = []
    earlier_allows: list[tuple[str, str]] = []
    for rule in rules:
        topic = str(rule["topic"])
        if topic.startswith("eq "):
            topic = topic[3:]
            warnings.append(f"{username}: 'eq {topic}' is treated as a plain filter")
        action = str(rule["action"])
        if rule["permission"] == "allow":
            lines.append(f"topic {ACCESS[action]} {topic}")
            earlier_allows.append((topic, action))
            continue
        if any(covers(t, topic) and a in ("all", action) for t, a in earlier_allows):
            continue  # dead in EMQX: the earlier allow always matches first
        if action != "all":
            warnings.append(f"{username}: deny {action} {topic} also denies the other action")
        if any(overlaps(t, topic) for t, _ in earlier_allows):
            warnings.append(f"{username}: deny {topic} wins over an earlier allow here")
        lines.append(f"topic deny {topic}")
    return lines, warnings


class Broker:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.dir = settings.data_dir / "mosquitto"
        self.conf = self.dir / "mosquitto.conf"
        self.passwd = self.dir / "passwd"
        self.acl = self.dir / "acl"
        self.process: asyncio.subprocess.Process | None = None
        self._reloaded = asyncio.Event()
        self._lock = asyncio.Lock()
        self._wanted = 0
        self._done = 0
        self._reader: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        self._running = False
        self._stopping = False
        self._started = asyncio.Event()

    # -- files -----------------------------------------------------------------------------
    def ensure_certs(self, listener: Listener) -> None:
        """EMQX ships default certificates for its SSL/WSS listeners; generate some once."""
        if listener.certfile and listener.keyfile:
            return
        certs = self.settings.data_dir / "certs"
        cert, key = certs / "cert.pem", certs / "key.pem"
        if not cert.exists():
            certs.mkdir(parents=True, exist_ok=True)
            openssl = shutil.which("openssl")
            if openssl is None:
                LOG.warning("no certfile given and no openssl: %s listener off", listener.kind)
                listener.enable = False
                return
            subprocess.run(
                [
                    openssl,
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "3650",
                    "-subj",
                    f"/CN={self.settings.node_host}",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                ],
                check=True,
                capture_output=True,
            )
        listener.certfile, listener.keyfile = str(cert), str(key)

    def render_conf(self, *, devices: bool = True) -> str:
        """mosquitto.conf; without ``devices`` only the relay listener, on loopback."""
        s = self.settings
        auth = s.authn_builtin or s.authn_configured
        lines = [
            "# Written by the EMQX stand-in; do not edit.",
            "per_listener_settings false",
            # Run as whoever runs the stand-in (mosquitto would switch from root to its
            # own user, which could not read the 0600 auth files).
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"allow_anonymous {'false' if auth else 'true'}",
            f"password_file {self.passwd}",
            f"acl_file {self.acl}",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 30",
            "log_dest stderr",  # unbuffered, unlike stdout into a pipe
            "log_timestamp false",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "sys_interval 5",
            "max_keepalive 65535",
            "",
            "# internal relay listener (like EMQX's cluster RPC port)",
            f"listener {s.cluster_port} {s.cluster_host if devices else LOOPBACK}".rstrip(),
        ]
        for listener in s.listeners.values() if devices else ():
            if not listener.enable:
                continue
            if listener.tls:
                self.ensure_certs(listener)
                if not listener.enable:
                    continue
            lines += ["", f"listener {listener.port} {listener.host}".rstrip()]
            if listener.kind in ("ws", "wss"):
                lines.append("protocol websockets")
            if listener.tls:
                lines += [f"certfile {listener.certfile}", f"keyfile {listener.keyfile}"]
                if listener.cacertfile:
                    lines.append(f"cafile {listener.cacertfile}")
                need_cert = listener.verify_peer and listener.fail_if_no_peer_cert
                lines.append(f"require_certificate {'true' if need_cert else 'false'}")
        return "\n".join(lines) + "\n"

    def render_auth(self) -> tuple[str, str]:
        """The passwd and acl file contents from the store."""
        s = self.settings
        passwd = [f"{INTERNAL_USER}:{self._internal_hash()}"]
        acl = []
        if s.no_match == "allow" and not s.authz_builtin:
            acl.append("topic readwrite #")  # anonymous clients
        acl += ["", f"user {INTERNAL_USER}", "topic readwrite #", "topic read $SYS/#"]
        rules = dict(self.store.items("acl")) if s.authz_builtin else {}
        for user_id, user in self.store.items("users"):
            if not _SAFE_NAME.match(user_id):
                self._warn_once(f"user {user_id!r} cannot be written for mosquitto; skipped")
                continue
            if user.get("mqtt_hash"):
                passwd.append(f"{user_id}:{user['mqtt_hash']}")
        for user_id in sorted(
            set(rules) | {u for u, v in self.store.items("users") if v.get("is_superuser")}
        ):
            if not _SAFE_NAME.match(user_id):
                continue
            user = self.store.get("users", user_id) or {}
            acl += ["", f"user {user_id}"]
            if user.get("is_superuser"):
                acl.append("topic readwrite #")  # superusers bypass authorization
                continue
            lines, warnings = compile_rules(user_id, rules.get(user_id, {}).get("rules", []))
            for warning in warnings:
                self._warn_once(warning)
            acl += lines
        if s.no_match == "allow":
            acl += ["", "pattern readwrite #"]  # no match -> allow, for every user
        return "\n".join(passwd) + "\n", "\n".join(acl) + "\n"

    def _internal_hash(self) -> str:
        if not hasattr(self, "_internal"):
            self._internal = mosquitto_hash(internal_password(self.settings))
        return self._internal

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            LOG.warning(message)

    def _write_files(self) -> None:
        passwd, acl = self.render_auth()
        for path, text in ((self.passwd, passwd), (self.acl, acl)):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)

    # -- process ---------------------------------------------------------------------------
    async def start(self, *, devices: bool = True) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.render_conf(devices=devices), encoding="utf-8")
        self._running = False
        self._started.clear()
        await asyncio.to_thread(self._write_files)
        self.process = await asyncio.create_subprocess_exec(
            self.settings.mosquitto,
            "-c",
            str(self.conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        self._reader = asyncio.create_task(self._read_log())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._started.wait(), 10)
        if self.process.returncode is not None or not self._running:
            raise RuntimeError("mosquitto did not start (see its log above)")

    async def _read_log(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            MQTT_LOG.info("%s", line)
            if line.endswith(" running"):
                self._running = True
                self._started.set()
            elif line.startswith("Reloading config"):
                self._reloaded.set()
            elif line.startswith("Error"):
                MQTT_LOG.error("%s", line)
        code = await self.process.wait()
        self._started.set()
        if self._running and not self._stopping:
            LOG.error("mosquitto exited with %s; stopping the node", code)
            os.kill(os.getpid(), signal.SIGTERM)

    async def sync(self) -> None:
        """Rewrite the auth files and reload; returns once mosquitto has reloaded.

        Concurrent callers share one reload when they can (the files always hold the
        whole store, so a later reload covers every earlier change).
        """
        self._wanted += 1
        target = self._wanted
        async with self._lock:
            if self._done >= target:
                return
            generation = self._wanted
            await asyncio.to_thread(self._write_files)
            if self.process is not None and self.process.returncode is None:
                self._reloaded.clear()
                self.process.send_signal(signal.SIGHUP)
                try:
                    await asyncio.wait_for(self._reloaded.wait(), 5)
                except TimeoutError:
                    LOG.warning("mosquitto did not confirm the reload")
            self._done = generation

    async def stop(self) -> None:
        self._stopping = True
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5)
            if self.process.returncode is None:
                self.process.kill()
        if self._reader is not None:
            self._reader.cancel()


def _die_with_parent() -> None:
    """Linux: mosquitto gets SIGTERM if the stand-in dies, so no broker is left behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
