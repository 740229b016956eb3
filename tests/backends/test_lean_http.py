"""The lean HTTP/1.1 client (backends/lean_http.py) against real servers on 127.0.0.1: the bundled emulator,
and tiny scripted servers (tests/backends/lean_servers.py) for what the emulator never does: chunked
answers, ``Connection: close``, idle keep-alives closed by the server, silence, answers cut short, TLS.
"Nothing paid twice" is counted on the server's side, by request body."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from airflow_llm_batch.backends import lean_http
from airflow_llm_batch.backends.lean_http import ConnectionFailed, LeanClient
from airflow_llm_batch.backends.raw_http import AiohttpClient, RawTarget, open_client
from airflow_llm_batch.backends.raw_realtime_send import RawSender
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.realtime.runner import CallFailed
from tests.backends.lean_servers import Seen, answer, echo, read_request, serving
from tests.triggers.test_shared_backends import open_connections_to

KEY = "lean-key"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_key=KEY)) as emulator:
        yield emulator


def client(limit: int = 4, timeout: float = 10.0, **kwargs: ssl.SSLContext) -> LeanClient:
    return LeanClient({"authorization": f"Bearer {KEY}"}, limit, timeout, **kwargs)


async def test_the_emulator_answers_over_one_keep_alive_connection(emu: Emulator) -> None:
    """Five POSTs one after another: five answers, each row answered once, one socket."""
    lean = client()
    port = urlparse(emu.url).port
    assert port is not None
    body = b'{"model":"m","messages":[{"role":"user","content":"hello"}]}'
    try:
        answers = [await lean.request("POST", f"{emu.openai_base_url}/chat/completions", body,
                                      {"x-llm-batch-custom-id": f"row-{i}", "content-type": "application/json"})
                   for i in range(5)]
        assert open_connections_to(port) == 1
    finally:
        await lean.aclose()
    assert [a.status for a in answers] == [200] * 5
    assert all(b'"choices"' in a.body for a in answers)
    assert emu.stats()["realtime"]["answered_by_custom_id"] == {f"row-{i}": 1 for i in range(5)}


async def test_a_wrong_key_is_an_answer_not_an_error(emu: Emulator) -> None:
    lean = LeanClient({"authorization": "Bearer nope"}, 2, 10.0)
    try:
        refused = await lean.request("GET", f"{emu.openai_base_url}/batches/batch_x")
    finally:
        await lean.aclose()
    assert refused.status == 401 and b"nope" not in refused.body


async def test_a_chunked_answer_is_reassembled_and_the_connection_reused() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        while await read_request(reader, seen) is not None:
            parts = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\":", b"\r\n3;ext=1\r\n1",
                     b"23\r\n1\r\n}\r\n0\r\n", b"x-trailer: 1\r\n\r\n"]
            for part in parts:  # in pieces, as a slow server sends them
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0)

    lean = client()
    async with serving(chunked) as (url, seen):
        first = await lean.request("GET", f"{url}/a")
        second = await lean.request("GET", f"{url}/b")
        await lean.aclose()
    assert first.body == second.body == b'{"a":123}'
    assert seen.connections == 1


async def test_an_answer_arriving_byte_by_byte_is_parsed_whole() -> None:
    """Every split point of a chunked answer with a trailer (and of the status line and headers)."""
    whole = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
             b"4\r\nabcd\r\n2\r\nef\r\n0\r\nx-sum: 6\r\n\r\n")

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        while await read_request(reader, seen) is not None:
            for i in range(len(whole)):
                writer.write(whole[i:i + 1])
                await writer.drain()
                await asyncio.sleep(0)

    async with serving(trickle) as (url, seen):
        lean = client()
        answers = [await lean.request("GET", f"{url}/t") for _ in range(2)]
        await lean.aclose()
    assert [a.body for a in answers] == [b"abcdef"] * 2 and answers[0].headers["x-a"] == "1, 2"
    assert seen.connections == 1


async def test_a_malformed_answer_is_a_connection_failure() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        writer.write(b"SMTP ready\r\n\r\n")
        await reader.read()

    async with serving(garbage) as (url, seen):
        lean = client()
        with pytest.raises(ConnectionFailed, match="malformed"):
            await lean.request("POST", f"{url}/x", b"once")
        await lean.aclose()
    assert seen.bodies == {b"once": 1}


@pytest.mark.parametrize("framing", ["content-length", "until-close"])
async def test_connection_close_is_honoured(framing: str) -> None:
    """An answer saying ``Connection: close`` (or ending with the connection): the next request goes on a
    new connection and both are answered once."""
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        body = await read_request(reader, seen)
        if framing == "content-length":
            writer.write(answer(200, body or b"", "connection: close"))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + (body or b""))
        await writer.drain()

    lean = client()
    async with serving(closing) as (url, seen):
        answers = [await lean.request("POST", f"{url}/x", f"body-{i}".encode()) for i in range(2)]
        await lean.aclose()
    assert [a.body for a in answers] == [b"body-0", b"body-1"]
    assert seen.connections == 2 and seen.bodies == {b"body-0": 1, b"body-1": 1}


async def test_an_idle_connection_the_server_closed_is_replaced_and_nothing_is_sent_twice() -> None:
    """The server answers once, then closes the keep-alive connection without a word (as servers do with
    idle ones): the next POST goes out once, on a new connection."""
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        body = await read_request(reader, seen)
        writer.write(answer(200, body or b""))
        await writer.drain()

    lean = client()
    async with serving(one_then_close) as (url, seen):
        assert (await lean.request("POST", f"{url}/x", b"first")).body == b"first"
        await seen.closed.wait()
        await asyncio.sleep(0.05)  # lets the client's loop read the server's FIN (ordering, not a timing check)
        assert (await lean.request("POST", f"{url}/x", b"second")).body == b"second"
        await lean.aclose()
    assert seen.connections == 2 and seen.bodies == {b"first": 1, b"second": 1}


async def test_a_connection_idle_too_long_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lean_http, "IDLE_SECONDS", 0.0)  # every idle connection counts as too old
    lean = client()
    async with serving(echo) as (url, seen):
        for i in range(3):
            await lean.request("POST", f"{url}/x", f"b{i}".encode())
        await lean.aclose()
    assert seen.connections == 3 and sum(seen.bodies.values()) == 3


async def test_a_server_that_never_answers_is_a_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        await reader.read()  # holds the connection open until the client gives up

    lean = client(timeout=0.3)
    async with serving(silent) as (url, seen):
        with pytest.raises(TimeoutError):
            await lean.request("POST", f"{url}/x", b"once")
        await lean.aclose()
    assert seen.bodies == {b"once": 1}


async def hang_on_request_named_hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                     seen: Seen) -> None:
    while (body := await read_request(reader, seen)) is not None:
        if body == b"hang":
            await reader.read()  # never answers; holds the connection until the client drops it
            return
        writer.write(answer(200, body))


async def test_calls_given_up_while_waiting_or_mid_answer_leak_no_connection() -> None:
    """One connection, held by a call that never gets an answer; a second call gives up while waiting
    for it (never sent), then the first is cancelled mid-answer (its connection closed, not reused):
    the pool serves the next call on a new connection, each body sent at most once."""
    async with serving(hang_on_request_named_hang) as (url, seen):
        lean = client(limit=1)
        hung = asyncio.create_task(lean.request("POST", f"{url}/x", b"hang"))
        await seen.got_request.wait()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await lean.request("POST", f"{url}/x", b"queued")
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung
        after = await lean.request("POST", f"{url}/x", b"after")
        await lean.aclose()
    assert after.body == b"after" and seen.connections == 2 and seen.peak_open == 1
    assert seen.bodies == {b"hang": 1, b"after": 1}


async def test_an_answer_cut_short_is_a_connection_failure_and_never_resent() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial")
        await writer.drain()

    sender = None
    async with serving(cut) as (url, seen):
        lean = client()
        with pytest.raises(ConnectionFailed, match="connection lost before the whole answer"):
            await lean.request("POST", f"{url}/x", b"paid")
        await lean.aclose()
        sender = RawSender(RawTarget(url, {"authorization": f"Bearer {KEY}"}))
        with pytest.raises(CallFailed) as failed:  # through the real-time send: "may be paid", no resend
            await sender.post("/chat/completions", {"model": "m", "n": 2}, "row-2")
        await sender.aclose()
    assert failed.value.code == "server_error" and "connection lost" in failed.value.message
    assert seen.bodies == {b"paid": 1, b'{"model":"m","n":2}': 1}


@pytest.mark.parametrize(("status", "code"), [(429, "rate_limit_exceeded"), (503, "server_error")])
async def test_error_answers_pass_their_retry_after_through(status: int, code: str) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        while await read_request(reader, seen) is not None:
            writer.write(answer(status, b'{"error":{"message":"slow down"}}', "Retry-After: 3"))

    async with serving(refuse) as (url, seen):
        lean = client()
        refused = await lean.request("GET", f"{url}/x")
        await lean.aclose()
        sender = RawSender(RawTarget(url, {}))
        with pytest.raises(CallFailed) as failed:
            await sender.post("/chat/completions", {"model": "m"}, "row-1")
        await sender.aclose()
    assert refused.status == status and refused.headers["retry-after"] == "3"
    assert failed.value.code == code and failed.value.retry_after == 3.0 and "slow down" in failed.value.message
    assert len(seen.heads) == 2  # one request each: an error answer is never resent by the client


async def test_a_redirect_is_not_followed() -> None:
    async def moved(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        while await read_request(reader, seen) is not None:
            writer.write(answer(301, b"", "location: /elsewhere"))

    async with serving(moved) as (url, seen):
        lean = client()
        redirect = await lean.request("POST", f"{url}/x", b"once")
        await lean.aclose()
    assert redirect.status == 301 and seen.bodies == {b"once": 1} and len(seen.heads) == 1


async def test_an_interim_100_answer_is_skipped() -> None:
    async def continued(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        while (body := await read_request(reader, seen)) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(200, body or b""))

    async with serving(continued) as (url, _):
        lean = client()
        assert (await lean.request("POST", f"{url}/x", b"fine")).body == b"fine"
        await lean.aclose()


async def test_the_pool_opens_at_most_its_limit_and_serves_waiters_in_order() -> None:
    async def slow_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        while (body := await read_request(reader, seen)) is not None:
            await asyncio.sleep(0.01)
            writer.write(answer(200, body or b""))

    async with serving(slow_echo) as (url, seen):
        lean = client(limit=4)
        answers = await asyncio.gather(*(lean.request("POST", f"{url}/x", b"%d" % i) for i in range(40)))
        await lean.aclose()
        single = client(limit=1)
        seen.order.clear()
        await asyncio.gather(*(single.request("POST", f"{url}/y", b"s%d" % i) for i in range(6)))
        await single.aclose()
    assert [a.body for a in answers] == [b"%d" % i for i in range(40)]
    assert seen.peak_open <= 4 and seen.connections <= 5
    assert seen.order == [b"s%d" % i for i in range(6)]  # FIFO behind one connection


async def test_the_request_carries_the_fixed_headers_once_and_identity_encoding() -> None:
    async with serving(echo) as (url, seen):
        lean = LeanClient({"Authorization": "Bearer k", "User-Agent": "sdk/1", "Accept-Encoding": "gzip"}, 2, 5.0)
        await lean.request("POST", f"{url}/v1/x?api-version=1", b"{}", {"x-llm-batch-custom-id": "r1"})
        await lean.aclose()
    head = seen.heads[0].lower()
    assert head.startswith("post /v1/x?api-version=1 http/1.1\r\n")
    assert head.count("user-agent:") == 1 and "user-agent: sdk/1" in head
    assert "accept-encoding: identity" in head and "gzip" not in head and "x-llm-batch-custom-id: r1" in head


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async with serving(echo) as (url, seen):
        lean = client()
        with pytest.raises(ValueError, match="line break"):
            await lean.request("POST", f"{url}/x", b"{}", {"x-llm-batch-custom-id": "r1\r\nx-evil: 1"})
        await lean.aclose()
    assert not seen.bodies


async def test_a_closed_client_and_a_refused_port_are_connection_failures(emu: Emulator) -> None:
    lean = client()
    await lean.aclose()
    with pytest.raises(ConnectionFailed, match="closed"):
        await lean.request("GET", f"{emu.url}/x")
    async with serving(echo) as (url, _):
        pass  # the port is free again: nothing listens there
    with pytest.raises(ConnectionFailed, match="could not connect"):
        await client().request("GET", f"{url}/x")


def test_aiohttp_stays_behind_a_proxy_and_for_other_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def kinds() -> list[type]:
        clients = [open_client(RawTarget(base, {})) for base in ("http://h/v1", "https://h", "unix://sock")]
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
        clients.append(open_client(RawTarget("https://h", {})))
        for made in clients:
            await made.aclose()
        return [type(made) for made in clients]

    assert asyncio.run(kinds()) == [LeanClient, LeanClient, AiohttpClient, AiohttpClient]


def self_signed(folder: Path) -> tuple[Path, Path, str]:
    """A certificate for 127.0.0.1 signed by itself: (cert file, key file, PEM text)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem", pem.decode()


async def test_https_checks_the_servers_certificate(tmp_path: Path) -> None:
    """With the CA it trusts: answered over TLS, keep-alive kept; with the system's trust store: refused."""
    cert, key, pem = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    async with serving(echo, tls=server_tls) as (url, seen):
        trusting = client(ssl_context=ssl.create_default_context(cadata=pem))
        answers = [await trusting.request("POST", f"{url}/x", b"tls-%d" % i) for i in range(2)]
        await trusting.aclose()
        with pytest.raises(ConnectionFailed, match="SSLCertVerificationError"):
            await client().request("POST", f"{url}/x", b"never")
    assert [a.body for a in answers] == [b"tls-0", b"tls-1"]
    assert seen.bodies == {b"tls-0": 1, b"tls-1": 1}
