"""The informer: list, then watch, every change reported once, nothing missed across a gap.

Two servers, both real HTTP on loopback: kmock's Kubernetes emulator (objects written through the API
facade itself; it replays every object on each watch and ignores selectors on watches, both of which
the informer must absorb), and a scripted apiserver for what kmock cannot do: a watch answered with
410 Gone, after which the relist must report what changed and what went away in the gap.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from rerank_operator.kube import KubeApi
from rerank_operator.kube.credentials import Credentials
from rerank_operator.kube.informer import Informer, selector_terms
from rerank_operator.sandbox.procs import free_port

OWNED = "app.kubernetes.io/managed-by=rerank-operator"


def configmap(name: str, *, owned: bool = True, **data: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "rerank-operator"} if owned else {"team": "search"}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ml", "labels": labels},
        "data": data,
    }


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []  # (type, name, resourceVersion)
        self.objects: list[dict[str, Any]] = []

    def __call__(self, change: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.events.append((change, meta["name"], str(meta.get("resourceVersion"))))
        self.objects.append(obj)

    def names(self, change: str) -> list[str]:
        return [name for kind, name, _ in self.events if kind == change]


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_listed_then_watched_each_change_once(k8s_emulator: Any) -> None:
    kube = KubeApi(Credentials(server=str(k8s_emulator.url).rstrip("/")))
    await kube.create(configmap("before", a="1"))
    await kube.create(configmap("foreign", owned=False))  # not selected: never reported
    seen = Seen()
    informer = Informer(kube, "ConfigMap", seen, namespace="ml", label_selector=OWNED)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert seen.events and seen.names("ADDED") == ["before"]

        created = await kube.create(configmap("after", a="1"))
        await until(lambda: "after" in seen.names("ADDED"))
        await kube.request(
            "PATCH",
            "/api/v1/namespaces/ml/configmaps/after",
            body={"data": {"a": "2"}},
            content_type="application/merge-patch+json",
        )
        await until(lambda: "after" in seen.names("MODIFIED"))
        modified = [e for e in seen.events if e[:2] == ("MODIFIED", "after")][-1]
        assert modified[2] != created["metadata"]["resourceVersion"]

        await kube.request(  # it stops being ours: for the informer, it is gone
            "PATCH",
            "/api/v1/namespaces/ml/configmaps/before",
            body={"metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}}},
            content_type="application/merge-patch+json",
        )
        await until(lambda: "before" in seen.names("DELETED"))
        await kube.delete("ConfigMap", "ml", "after")
        await until(lambda: "after" in seen.names("DELETED"))
        await kube.create(configmap("foreign-2", owned=False))
        await asyncio.sleep(0.3)
        assert "foreign" not in {name for _, name, _ in seen.events}
        assert "foreign-2" not in {name for _, name, _ in seen.events}
        # kmock replays every object on each watch it serves: none of that was reported twice
        assert seen.names("ADDED") == ["before", "after"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.aclose()


async def test_a_relist_after_a_gap_reports_what_was_missed(k8s_emulator: Any) -> None:
    kube = KubeApi(Credentials(server=str(k8s_emulator.url).rstrip("/")))
    for name in ("stays", "changes", "goes"):
        await kube.create(configmap(name, v="1"))
    seen = Seen()
    informer = Informer(kube, "ConfigMap", seen, namespace="ml", label_selector=OWNED)
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    await kube.delete("ConfigMap", "ml", "goes")  # while nobody watched
    await kube.request(
        "PATCH",
        "/api/v1/namespaces/ml/configmaps/changes",
        body={"data": {"v": "2"}},
        content_type="application/merge-patch+json",
    )
    seen.events.clear()
    task = asyncio.create_task(informer.run())  # a new run lists first
    try:
        await until(lambda: len(seen.events) >= 2)
        await asyncio.sleep(0.3)
        assert sorted((kind, name) for kind, name, _ in seen.events) == [
            ("DELETED", "goes"),
            ("MODIFIED", "changes"),
        ]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.aclose()


class Scripted:
    """An apiserver that answers lists with ``items`` (at ``version``) and the first watch with a 410
    ERROR event; later watches get ``then`` events and stay open."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.version = "10"
        self.then: list[dict[str, Any]] = []
        self.requests: list[dict[str, list[str]]] = []
        self.watches = 0
        self.end_at_once = False  # every watch ends with no event, at once


@pytest.fixture
def scripted() -> Iterator[tuple[Scripted, str]]:
    script = Scripted()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            script.requests.append(query)
            if query.get("watch") != ["true"]:
                # as served: the list has an apiVersion, its items have no apiVersion or kind of their own
                items = [
                    {k: v for k, v in i.items() if k not in ("apiVersion", "kind")} for i in script.items
                ]
                listed = {
                    "apiVersion": "v1",
                    "kind": "ConfigMapList",
                    "metadata": {"resourceVersion": script.version},
                }
                body = json.dumps({**listed, "items": items}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            script.watches += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            if script.end_at_once:
                return
            if script.watches == 1:
                gone = {
                    "kind": "Status",
                    "code": 410,
                    "reason": "Expired",
                    "message": "too old resource version",
                }
                self.wfile.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                return
            for event in script.then:
                line = json.dumps(event).encode() + b"\n"
                half = len(line) // 2  # an event split across reads
                self.wfile.write(line[:half])
                self.wfile.flush()
                time.sleep(0.01)
                self.wfile.write(line[half:])
                self.wfile.flush()
            time.sleep(1.0)  # then the server ends the watch, as at its timeout

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield script, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def cm(name: str, version: str) -> dict[str, Any]:
    body = configmap(name)
    body["metadata"]["resourceVersion"] = version
    return body


async def test_a_gone_watch_lists_again_and_reports_the_difference(scripted: tuple[Scripted, str]) -> None:
    script, url = scripted
    script.items = [cm("a", "5"), cm("b", "6")]
    seen = Seen()
    kube = KubeApi(Credentials(server=url))
    informer = Informer(kube, "ConfigMap", seen, namespace="ml", label_selector=OWNED)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert seen.events == [("ADDED", "a", "5"), ("ADDED", "b", "6")]
        # listed items get the apiVersion and kind a watched object has (the drift check compares them)
        assert {(o["apiVersion"], o["kind"]) for o in seen.objects} == {("v1", "ConfigMap")}
        # the first watch is answered 410: the informer lists again, now at a newer state
        script.items, script.version = [cm("a", "5"), cm("c", "12")], "12"
        script.then = [
            {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "13"}}},
            {"type": "MODIFIED", "object": cm("c", "14")},
        ]
        await until(lambda: ("MODIFIED", "c", "14") in seen.events)
        assert seen.events[2:] == [("ADDED", "c", "12"), ("DELETED", "b", "6"), ("MODIFIED", "c", "14")]
        lists = [q for q in script.requests if q.get("watch") != ["true"]]
        watches = [q for q in script.requests if q.get("watch") == ["true"]]
        assert len(lists) == 2 and lists[0]["labelSelector"] == [OWNED]
        assert watches[0]["resourceVersion"] == ["10"] and watches[1]["resourceVersion"] == ["12"]
        assert watches[1]["allowWatchBookmarks"] == ["true"]
        await until(lambda: script.watches >= 3, within=10)  # the server ended it: resumed where it was
        assert [q for q in script.requests if q.get("watch") == ["true"]][2]["resourceVersion"] == ["14"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.aclose()


def test_only_equality_selectors() -> None:
    assert selector_terms("a=b, c=d") == {"a": "b", "c": "d"}
    assert selector_terms(None) == {}
    with pytest.raises(ValueError, match="only k=v"):
        selector_terms("a!=b")


async def test_a_server_that_ends_every_watch_at_once_is_not_asked_in_a_loop(
    scripted: tuple[Scripted, str],
) -> None:
    script, url = scripted
    script.end_at_once = True
    kube = KubeApi(Credentials(server=url))
    informer = Informer(kube, "ConfigMap", Seen(), namespace="ml", label_selector=OWNED)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.sleep(2.5)
        assert 1 <= script.watches <= 3  # backing off 1 s, then 2 s
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.aclose()
