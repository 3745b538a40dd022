#!/usr/bin/env python3
"""An LwM2M 1.1 client on aiocoap, driven by Ferrite's interop test (tests/tests/interop_aiocoap.rs).

aiocoap (Python, by Christian Amsüss) is a CoAP stack independent of Ferrite's: its own message
layer, deduplication, retransmission, block-wise transfer and Observe. The LwM2M layer here is
small and speaks what a 1.1 device that only knows SenML JSON speaks:
  - Register with lwm2m=1.1 and ct=110 on the root link (the server must then ask for SenML JSON,
    Accept 110, and never TLV), Update, De-register;
  - Read of a resource, an instance, a multi-instance resource, as SenML JSON with a base name;
  - Read-Composite (FETCH with a SenML JSON list of names), Write (PUT, SenML JSON), Execute
    with arguments, Discover (link format), Write-Attributes (query), Observe with notifications;
  - LwM2M Send (POST /dp, SenML JSON with times).

Usage: python3 aiocoap-client.py HOST PORT ENDPOINT LIFETIME [VERSION]
(VERSION: the lwm2m= of the Register, 1.1 by default; 1.2 registers as a 1.2 client.)
Prints one JSON object per line on stdout ({"event": ...}); reads commands on stdin:
  set /3/0/9 42    set a resource (its observers are notified)
  send /3303/0/5700 22.5
                   LwM2M Send of one value (with the current time)
  update           send a registration Update
  quit             de-register, then exit 0
"""

import asyncio
import json
import sys
import time

import aiocoap
import aiocoap.interfaces
import aiocoap.meta
from aiocoap import Code, Message

SENML_JSON = 110
LINK_FORMAT = 40
TEXT = 0

# The objects: {object: {instance: {resource: value or {resource instance: value}}}}.
OBJECTS = {
    1: {0: {0: 1, 1: 60, 6: False, 7: "U"}},
    3: {
        0: {
            0: "aiocoap meters",
            1: "AIO-11",
            2: "AIO-0001",
            3: aiocoap.meta.version,
            9: 93,
            11: {0: 0},
            13: 1700000000,
            16: "U",
        }
    },
    3303: {0: {5700: 21.5, 5701: "Cel"}},
}
EXECUTABLE = {(3, 0, 4)}


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def parse_path(text):
    parts = [p for p in text.strip("/").split("/") if p != ""]
    return tuple(int(p) for p in parts)


def path_text(path):
    return "/" + "/".join(str(p) for p in path)


def record(name, value):
    """One SenML JSON record for `value` under `name` (relative to the base name)."""
    r = {"n": name} if name else {}
    if isinstance(value, bool):
        r["vb"] = value
    elif isinstance(value, (int, float)):
        r["v"] = value
    else:
        r["vs"] = str(value)
    return r


def node_at(path):
    """The value, instance or object at `path`, or None."""
    node = OBJECTS
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def flatten(path, node):
    """(relative name parts, leaf value) pairs below `path`."""
    if not isinstance(node, dict):
        return [((), node)]
    pairs = []
    for key in sorted(node):
        for rest, value in flatten(path + (key,), node[key]):
            pairs.append(((key,) + rest, value))
    return pairs


def senml_of(path):
    """The SenML JSON pack of what is at `path`: a base name and relative names."""
    node = node_at(path)
    if node is None:
        return None
    pairs = flatten(path, node)
    base = path_text(path) + ("/" if isinstance(node, dict) else "")
    pack = []
    for i, (rest, value) in enumerate(pairs):
        rec = record("/".join(str(p) for p in rest), value)
        if i == 0:
            rec = {"bn": base, **rec}
        pack.append(rec)
    return pack


def records_of(payload):
    """(path, value) pairs of a SenML JSON pack, names resolved against base names."""
    base = ""
    pairs = []
    for rec in json.loads(payload.decode("utf-8")):
        base = rec.get("bn", base)
        name = base + rec.get("n", "")
        if "v" in rec:
            value = rec["v"]
        elif "vs" in rec:
            value = rec["vs"]
        elif "vb" in rec:
            value = rec["vb"]
        else:
            value = None
        pairs.append((parse_path(name), value, rec.get("t")))
    return pairs


def set_value(path, value):
    if len(path) < 3:
        return False
    node = node_at(path[:-1])
    if not isinstance(node, dict):
        return False
    node[path[-1]] = value
    return True


def links(path):
    """Discover (link format): the object or instance and what is below it down to resources,
    or the resource alone, each with the attributes written to it."""
    node = node_at(path)
    if node is None:
        return None
    items = [path]
    if len(path) == 1:
        for instance in sorted(node):
            items.append(path + (instance,))
            items += [path + (instance, r) for r in sorted(node[instance])]
            items += [p for p in sorted(EXECUTABLE) if p[:2] == path + (instance,)]
    elif len(path) == 2:
        items += [path + (r,) for r in sorted(node)]
        items += [p for p in sorted(EXECUTABLE) if p[:2] == path]
    parts = []
    for item in items:
        attrs = ATTRIBUTES.get(item, {})
        parts.append("<%s>" % path_text(item) + "".join(";%s=%s" % kv for kv in attrs.items()))
    return ",".join(parts)


ATTRIBUTES = {}


class Lwm2mSite(aiocoap.interfaces.ObservableResource):
    """Every request the server sends, whatever its path."""

    def __init__(self):
        super().__init__()
        self.observers = {}  # path -> set of ServerObservation

    async def needs_blockwise_assembly(self, request):
        return True

    async def add_observation(self, request, serverobservation):
        path = tuple(int(p) for p in request.opt.uri_path if p != "")
        if node_at(path) is None:
            return
        self.observers.setdefault(path, set()).add(serverobservation)

        def gone(path=path, obs=serverobservation):
            self.observers.get(path, set()).discard(obs)
            emit("observe-ended", path=path_text(path))

        serverobservation.accept(gone)
        emit("observed", path=path_text(path))

    def changed(self, path):
        for observed, observations in self.observers.items():
            if path[: len(observed)] == observed:
                for obs in list(observations):
                    obs.trigger()

    async def render_to_pipe(self, pipe):
        block2 = pipe.request.opt.block2
        if block2 is not None and block2.block_number > 0:
            # A later block of an answer aiocoap slices (render is not called again for it).
            path = path_text(tuple(int(p) for p in pipe.request.opt.uri_path if p != ""))
            emit("block2", path=path, number=block2.block_number, size=block2.size)
        await aiocoap.interfaces.ObservableResource._render_to_pipe(self, pipe)

    async def render(self, request):
        try:
            path = tuple(int(p) for p in request.opt.uri_path if p != "")
        except ValueError:
            return Message(code=Code.NOT_FOUND)
        accept = request.opt.accept
        if request.code == Code.GET:
            if accept == LINK_FORMAT:
                body = links(path)
                if body is None:
                    return Message(code=Code.NOT_FOUND)
                emit("discover", path=path_text(path))
                return Message(code=Code.CONTENT, payload=body.encode(), content_format=LINK_FORMAT)
            if accept not in (None, SENML_JSON):
                return Message(code=Code.NOT_ACCEPTABLE)
            pack = senml_of(path)
            if pack is None:
                return Message(code=Code.NOT_FOUND)
            emit("read", path=path_text(path), accept=accept)
            return Message(
                code=Code.CONTENT, payload=json.dumps(pack).encode(), content_format=SENML_JSON
            )
        if request.code == Code.FETCH and path == ():
            if request.opt.content_format != SENML_JSON:
                return Message(code=Code.UNSUPPORTED_CONTENT_FORMAT)
            names = [p for p, _, _ in records_of(request.payload)]
            pack = []
            for name in names:
                node = node_at(name)
                if node is None:
                    continue
                for rest, value in flatten(name, node):
                    pack.append(record(path_text(name + rest), value))
            emit("read-composite", paths=[path_text(n) for n in names])
            return Message(
                code=Code.CONTENT, payload=json.dumps(pack).encode(), content_format=SENML_JSON
            )
        if request.code in (Code.PUT, Code.POST) and path in EXECUTABLE:
            emit("execute", path=path_text(path), args=request.payload.decode("utf-8", "replace"))
            return Message(code=Code.CHANGED)
        if request.code == Code.PUT and request.opt.uri_query and not request.payload:
            attrs = dict(q.split("=", 1) if "=" in q else (q, "") for q in request.opt.uri_query)
            ATTRIBUTES.setdefault(path, {}).update(attrs)
            emit("write-attributes", path=path_text(path), attributes=attrs)
            return Message(code=Code.CHANGED)
        if request.code in (Code.PUT, Code.POST):
            if request.opt.content_format != SENML_JSON:
                return Message(code=Code.UNSUPPORTED_CONTENT_FORMAT)
            try:
                records = records_of(request.payload)
            except (ValueError, KeyError):
                return Message(code=Code.BAD_REQUEST)
            for target, value, _ in records:
                if target[: len(path)] != path or not set_value(target, value):
                    return Message(code=Code.BAD_REQUEST)
                # `block1`: the request came in blocks (aiocoap assembled them).
                emit("write", path=path_text(target), value=value, block1=request.opt.block1 is not None)
                self.changed(target)
            return Message(code=Code.CHANGED)
        return Message(code=Code.METHOD_NOT_ALLOWED)


async def main():
    host, port, endpoint, lifetime = sys.argv[1:5]
    version = sys.argv[5] if len(sys.argv) > 5 else "1.1"
    OBJECTS[1][0][1] = int(lifetime)
    site = Lwm2mSite()
    context = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", 0))
    server = "coap://%s:%s" % (host, port)

    objects = '</>;rt="oma.lwm2m";ct=%d,</1/0>,</3/0>,</3303/0>' % SENML_JSON
    register = Message(
        code=Code.POST,
        uri="%s/rd?ep=%s&lt=%s&lwm2m=%s&b=U" % (server, endpoint, lifetime, version),
        payload=objects.encode(),
        content_format=LINK_FORMAT,
    )
    response = await context.request(register).response
    if response.code != Code.CREATED:
        emit("error", what="register", code=str(response.code))
        sys.exit(1)
    location = "/".join(response.opt.location_path)
    emit("registered", location=location)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line:
            if reader.at_eof():
                break
            continue
        words = line.split()
        if words[0] == "set" and len(words) == 3:
            path = parse_path(words[1])
            raw = words[2]
            value = int(raw) if raw.lstrip("-").isdigit() else raw
            set_value(path, value)
            site.changed(path)
            emit("set", path=path_text(path))
        elif words[0] == "send" and len(words) == 3:
            path = parse_path(words[1])
            pack = [{"bn": path_text(path), "bt": time.time(), "v": float(words[2])}]
            request = Message(
                code=Code.POST,
                uri="%s/dp" % server,
                payload=json.dumps(pack).encode(),
                content_format=SENML_JSON,
            )
            answer = await context.request(request).response
            emit("sent", code=str(answer.code))
        elif words[0] == "update":
            request = Message(code=Code.POST, uri="%s/%s" % (server, location))
            answer = await context.request(request).response
            emit("updated", code=str(answer.code))
        elif words[0] == "quit":
            break
    request = Message(code=Code.DELETE, uri="%s/%s" % (server, location))
    answer = await context.request(request).response
    emit("deregistered", code=str(answer.code))
    await context.shutdown()


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.stderr.write("usage: python3 aiocoap-client.py HOST PORT ENDPOINT LIFETIME [VERSION]\n")
        sys.exit(2)
    asyncio.run(main())
