"""The fault proxy itself: every fault does what it says, scripted or seeded."""

from __future__ import annotations

import httpx
import pytest

from tests.faults.conftest import v3
from tests.faults.proxy import (
    Delay,
    DropResponse,
    FaultPlan,
    FaultProxy,
    HttpRequest,
    Pass,
    Reset,
    Status,
    Truncate,
    writes,
)


def _insert(http: httpx.Client, proxy: FaultProxy, item_id: str) -> httpx.Response:
    return http.post(
        f"{proxy.url}/tables/todoitem", json={"id": item_id, "text": "x"}, headers=v3()
    )


def _exists(server_url: str, item_id: str) -> bool:
    response = httpx.get(f"{server_url}/tables/todoitem/{item_id}", headers=v3())
    return response.status_code == 200


def test_pass_forwards_and_keeps_the_client_connection_alive(
    proxy: FaultProxy, server_url: str
) -> None:
    with httpx.Client(timeout=5) as http:
        first = _insert(http, proxy, "a")
        second = http.get(f"{proxy.url}/tables/todoitem/a", headers=v3())
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["text"] == "x"
    assert [(e.method, e.status) for e in proxy.log] == [("POST", 201), ("GET", 200)]
    assert proxy.faults_injected() == 0


def test_reset_never_reaches_the_server(proxy: FaultProxy, server_url: str) -> None:
    proxy.plan.push(Reset())
    with httpx.Client(timeout=5) as http, pytest.raises(httpx.TransportError):
        _insert(http, proxy, "r")
    assert not _exists(server_url, "r")
    assert proxy.log[0].status is None


@pytest.mark.parametrize(
    "fault",
    [pytest.param(DropResponse(), id="drop"), pytest.param(Truncate(0.5), id="truncate")],
)
def test_a_lost_response_was_handled_by_the_server(
    proxy: FaultProxy, server_url: str, fault: DropResponse | Truncate
) -> None:
    proxy.plan.push(fault)
    with httpx.Client(timeout=5) as http, pytest.raises(httpx.TransportError):
        _insert(http, proxy, "d")
    assert _exists(server_url, "d")
    assert proxy.lost_after_handling() == 1


def test_status_answers_without_forwarding(proxy: FaultProxy, server_url: str) -> None:
    proxy.plan.push(Status(503, retry_after="7"))
    with httpx.Client(timeout=5) as http:
        response = _insert(http, proxy, "s")
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    assert not _exists(server_url, "s")


def test_delay_postpones_the_request(proxy: FaultProxy) -> None:
    proxy.plan.push(Delay(1.0))
    timeout = httpx.Timeout(5, read=0.2)
    with httpx.Client(timeout=timeout) as http, pytest.raises(httpx.ReadTimeout):
        http.get(f"{proxy.url}/tables/todoitem", headers=v3())


def test_down_resets_every_connection(proxy: FaultProxy) -> None:
    proxy.down = True
    with httpx.Client(timeout=5) as http, pytest.raises(httpx.TransportError):
        http.get(f"{proxy.url}/tables/todoitem", headers=v3())
    proxy.down = False
    with httpx.Client(timeout=5) as http:
        assert http.get(f"{proxy.url}/tables/todoitem", headers=v3()).status_code == 200


def test_scripted_faults_wait_for_a_matching_request() -> None:
    plan = FaultPlan().push(Reset(), match=writes)
    get = HttpRequest("GET", "/tables/t", [], b"")
    post = HttpRequest("POST", "/tables/t", [], b"{}")
    assert isinstance(plan.next_fault(get), Pass)
    assert isinstance(plan.next_fault(post), Reset)
    assert isinstance(plan.next_fault(post), Pass) and plan.pending == 0


def test_random_faults_are_reproducible_from_the_seed() -> None:
    request = HttpRequest("GET", "/", [], b"")

    def draw(seed: int) -> list[str]:
        plan = FaultPlan().randomly(0.5, [Reset(), Status(502)], seed=seed)
        return [type(plan.next_fault(request)).__name__ for _ in range(200)]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    assert 60 < sum(name != "Pass" for name in draw(1)) < 140


def test_random_probability_is_checked() -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultPlan().randomly(1.5, [Reset()], seed=0)


def test_truncate_cuts_a_bodiless_response_too(proxy: FaultProxy, server_url: str) -> None:
    with httpx.Client(timeout=5) as http:
        assert _insert(http, proxy, "t").status_code == 201
        proxy.plan.push(Truncate(0.5))
        with pytest.raises(httpx.TransportError):
            http.delete(f"{proxy.url}/tables/todoitem/t", headers=v3())
    assert proxy.log[-1].status == 204 and proxy.lost_after_handling() == 1
