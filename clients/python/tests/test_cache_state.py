"""The cache's rules, on :class:`keyport.cache.state.CacheState` alone with a
clock the tests move (no server: these are the rules' edge cases; the live
behaviour is in ``test_session_cache.py``)."""

from __future__ import annotations

import threading
from typing import Any, List, Tuple

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from keyport.cache import CacheConfig
from keyport.cache.refusals import Refusals
from keyport.cache.state import CacheState, session_id_of
from keyport.errors import KeyportError, SessionExpired, Unauthenticated
from keyport.v1 import authorization_service_pb2, session_pb2, session_service_pb2, user_pb2


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(user_id: str = "u1", session_id: str = "s1", ttl: float = 30.0) -> session_service_pb2.GetSessionResponse:
    return session_service_pb2.GetSessionResponse(
        session=session_pb2.Session(id=session_id, user_id=user_id),
        user=user_pb2.User(id=user_id, email=f"{user_id}@example.com"),
        cache_ttl=duration_pb2.Duration(seconds=int(ttl), nanos=int((ttl % 1) * 1e9)),
    )


def authorized(
    granted: List[str], decided: List[Tuple[str, bool]], user_id: str = "u1"
) -> authorization_service_pb2.AuthorizeResponse:
    return authorization_service_pb2.AuthorizeResponse(
        session=session_pb2.Session(id="s1", user_id=user_id),
        user=user_pb2.User(id=user_id),
        granted=granted,
        decisions=[authorization_service_pb2.PermissionDecision(permission=p, allowed=a) for p, a in decided],
        cache_ttl=duration_pb2.Duration(seconds=30),
    )


def event(**kwargs: object) -> session_service_pb2.WatchSessionEventsResponse:
    return session_service_pb2.WatchSessionEventsResponse(**kwargs)  # type: ignore[arg-type]


def live_state(config: CacheConfig = CacheConfig()) -> Tuple[CacheState, Clock]:
    clock = Clock()
    state = CacheState(config, clock)
    state.apply(event(ready=session_service_pb2.StreamReady()))
    assert state.live
    return state, clock


def test_entries_live_for_the_shorter_of_the_hint_and_max_ttl() -> None:
    state, clock = live_state(CacheConfig(max_ttl=60))
    state.insert_session("kp_short.x", answer("u1", "short", ttl=5), state.ticket())
    state.insert_session("kp_long.x", answer("u2", "long", ttl=600), state.ticket())
    clock.now += 4.999
    assert state.lookup("kp_short.x") is not None, "within the server's 5 s hint"
    clock.now += 0.001
    assert state.lookup("kp_short.x") is None, "gone at the hint"
    clock.now += 55 - 0.001
    assert state.lookup("kp_long.x") is not None, "a 600 s hint is capped at max_ttl"
    clock.now += 0.001
    assert state.lookup("kp_long.x") is None, "gone at max_ttl"


def test_only_the_whole_token_hits() -> None:
    state, _ = live_state()
    state.insert_session("kp_s1.secret", answer(), state.ticket())
    assert state.lookup("kp_s1.secret") is not None
    assert state.lookup("kp_s1.other") is None, "the id is public; the secret must match"
    assert state.lookup("kp_s1.secreT") is None
    assert state.lookup("kp_s1.secret\u00e9") is None, "non-ASCII never hits (nor raises)"
    assert state.lookup("") is None and state.lookup("kp_") is None and state.lookup("garbage") is None


def test_nothing_is_served_or_kept_while_not_live() -> None:
    state, _ = live_state()
    state.insert_session("kp_a.x", answer("u1", "a"), state.ticket())
    state.set_live(False)
    assert state.lookup("kp_a.x") is None
    state.insert_session("kp_b.x", answer("u1", "b"), state.ticket())
    assert len(state) == 0, "a dark cache keeps nothing"
    state.set_live(True)
    assert state.lookup("kp_a.x") is None, "back live, it starts empty"


def test_an_answer_that_raced_an_event_is_not_kept() -> None:
    state, _ = live_state()
    ticket = state.ticket()
    # Any event while the call was in flight, even about someone else.
    state.apply(event(session_revoked=session_pb2.SessionRevoked(session_id="other", user_id="u9")))
    state.insert_session("kp_a.x", answer("u1", "a"), ticket)
    assert state.lookup("kp_a.x") is None
    ticket = state.ticket()
    state.apply(event(heartbeat=session_service_pb2.Heartbeat()))
    state.insert_session("kp_a.x", answer("u1", "a"), ticket)
    assert state.lookup("kp_a.x") is not None, "a heartbeat invalidates nothing"


def test_an_answer_that_raced_a_reconnect_is_not_kept() -> None:
    state, _ = live_state()
    ticket = state.ticket()
    state.set_live(False)
    state.set_live(True)
    state.insert_session("kp_a.x", answer("u1", "a"), ticket)
    assert state.lookup("kp_a.x") is None


def test_zero_ttl_answers_are_not_cached() -> None:
    state, _ = live_state(CacheConfig(max_ttl=0))
    state.insert_session("kp_a.x", answer("u1", "a"), state.ticket())
    assert state.lookup("kp_a.x") is None
    state, _ = live_state()
    state.insert_session("kp_a.x", answer("u1", "a", ttl=0), state.ticket())
    assert state.lookup("kp_a.x") is None, "the server said not to"


def test_events_drop_what_they_name() -> None:
    state, _ = live_state()
    for token, user, session in [("kp_a.x", "u1", "a"), ("kp_b.x", "u1", "b"), ("kp_c.x", "u2", "c")]:
        state.insert_session(token, answer(user, session), state.ticket())
    state.apply(event(session_revoked=session_pb2.SessionRevoked(session_id="a", user_id="u1")))
    assert state.lookup("kp_a.x") is None and state.lookup("kp_b.x") is not None
    state.apply(event(user_changed=session_pb2.UserChanged(user_id="u1")))
    assert state.lookup("kp_b.x") is None and state.lookup("kp_c.x") is not None
    assert state.stats().events == 2
    assert state.live


def test_roles_changed_drops_every_decision() -> None:
    state, _ = live_state()
    state.insert_authorized("kp_s1.x", authorized(["posts:read"], [("posts:read", True)]), state.ticket())
    decision = state.decide_cached("kp_s1.x", ["posts:read"])
    assert decision is not None and decision.allowed == (True,)
    state.apply(event(roles_changed=session_service_pb2.RolesChanged()))
    assert state.decide_cached("kp_s1.x", ["posts:read"]) is None
    assert state.live, "the stream is fine: only the answers are stale"


def test_decisions_only_for_names_keyport_decided() -> None:
    state, _ = live_state()
    state.insert_authorized("kp_s1.x", authorized(["posts:read", "posts:write"], [("posts:read", True)]), state.ticket())
    assert state.decide_cached("kp_s1.x", ["posts:write"]) is None, "not decided by Keyport yet: maybe unknown"
    denied = authorized(["posts:read"], [("billing:read", False)], user_id="u2")
    state.insert_authorized("kp_s2.x", denied, state.ticket())
    decision = state.decide_cached("kp_s1.x", ["posts:read", "billing:read"])
    assert decision is not None and decision.allowed == (True, False) and not decision.all
    state.insert_session("kp_s3.x", answer("u3", "s3"), state.ticket())
    assert state.decide_cached("kp_s3.x", ["posts:read"]) is None, "a GetSession entry has no grants"


def test_api_key_events_drop_one_key_or_all_of_an_owner() -> None:
    state, _ = live_state()
    for token in ["kpa_one.x", "kpa_two.x"]:
        state.insert_authorized(token, authorized(["posts:read"], [("posts:read", True)], user_id="owner"), state.ticket())
    state.apply(event(api_keys_changed=session_service_pb2.ApiKeysChanged(owner_id="owner", api_key_id="one")))
    assert state.decide_cached("kpa_one.x", ["posts:read"]) is None
    assert state.decide_cached("kpa_two.x", ["posts:read"]) is not None
    state.apply(event(api_keys_changed=session_service_pb2.ApiKeysChanged(owner_id="owner", api_key_id="")))
    assert state.decide_cached("kpa_two.x", ["posts:read"]) is None


def test_size_is_bounded() -> None:
    state, clock = live_state(CacheConfig(max_entries=3))
    for i in range(10):
        state.insert_session(f"kp_{i}.x", answer(f"u{i}", str(i)), state.ticket())
        assert len(state) <= 3
    assert state.lookup("kp_9.x") is not None, "the newest is kept"
    assert state.lookup("kp_0.x") is None, "the oldest went first"
    # Expired entries make room before live ones.
    state.insert_session("kp_old.x", answer("u-old", "old", ttl=1), state.ticket())
    clock.now += 2
    state.insert_session("kp_new.x", answer("u-new", "new"), state.ticket())
    assert state.lookup("kp_9.x") is not None and state.lookup("kp_new.x") is not None


def test_events_racing_inserts_never_leave_a_revoked_entry() -> None:
    """Many threads insert while another revokes; a revoked session is never served."""
    state, _ = live_state()
    stop = threading.Event()

    def inserting() -> None:
        while not stop.is_set():
            ticket = state.ticket()
            state.insert_session("kp_a.x", answer("u1", "a"), ticket)

    threads = [threading.Thread(target=inserting) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(200):
            state.apply(event(session_revoked=session_pb2.SessionRevoked(session_id="a", user_id="u1")))
            # The insert that took its ticket before this event may land; the
            # test below takes the ticket after: nothing before it survives.
        ticket_after = state.ticket()
        stop.set()
        for thread in threads:
            thread.join()
        state.apply(event(session_revoked=session_pb2.SessionRevoked(session_id="a", user_id="u1")))
        assert state.lookup("kp_a.x") is None
        state.insert_session("kp_a.x", answer("u1", "a"), ticket_after)
        assert state.lookup("kp_a.x") is None, "an insert under a ticket older than the last event is refused"
    finally:
        stop.set()


def test_session_ids_come_from_the_token() -> None:
    assert session_id_of("kp_abc.def") == "abc"
    assert session_id_of("kpa_abc.def") == "kpa_abc"
    assert session_id_of("abc.def") is None
    assert session_id_of("kp_abc") is None
    assert session_id_of("kp_.x") is None


class _FakeCall(grpc.RpcError, grpc.Call):
    """A finished call with a Keyport ``ErrorInfo``: what a refusal is made of."""

    def __init__(self, reason: str) -> None:
        from google.rpc import status_pb2

        info = error_details_pb2.ErrorInfo(reason=reason, domain="keyport.dev")
        status = status_pb2.Status(code=grpc.StatusCode.UNAUTHENTICATED.value[0], message="no")
        status.details.add().Pack(info)
        self._trailers = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAUTHENTICATED

    def details(self) -> str:
        return "no"

    def trailing_metadata(self) -> Any:
        return self._trailers

    def initial_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Any:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: object) -> bool:
        return False


def refusal(reason: str) -> KeyportError:
    err = KeyportError.from_rpc_error(_FakeCall(reason))
    assert err is not None
    return err


def test_refusals_remember_final_verdicts_only() -> None:
    clock = Clock()
    refusals = Refusals(30, 10, clock)
    refusals.remember("kp_a.x", refusal("UNAUTHENTICATED"))
    refusals.remember("kp_b.x", refusal("SESSION_EXPIRED"))
    refusals.remember("kp_c.x", refusal("RESOURCE_EXHAUSTED"))
    refusals.remember("kp_d.x", grpc.RpcError())
    assert isinstance(refusals.get("kp_a.x"), Unauthenticated)
    assert isinstance(refusals.get("kp_b.x"), SessionExpired)
    assert refusals.get("kp_c.x") is None, "not a verdict on the token"
    assert refusals.get("kp_d.x") is None, "an outage is never remembered"
    first, second = refusals.get("kp_a.x"), refusals.get("kp_a.x")
    assert first is not second, "each request gets an exception of its own"
    clock.now += 30
    assert refusals.get("kp_a.x") is None, "gone at refusal_ttl"


def test_refusals_stay_within_their_bound() -> None:
    refusals = Refusals(30, 3, Clock())
    for i in range(10):
        refusals.remember(f"kp_{i}.x", refusal("UNAUTHENTICATED"))
        assert len(refusals) <= 3
    assert refusals.get("kp_9.x") is not None
    off = Refusals(0, 3, Clock())
    off.remember("kp_a.x", refusal("UNAUTHENTICATED"))
    assert off.get("kp_a.x") is None, "refusal_ttl=0 always asks"


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        CacheConfig(heartbeat_timeout=0)
    with pytest.raises(ValueError):
        CacheConfig(max_entries=-1)


def test_the_end_users_address_and_agent_are_forwarded_when_metadata_can_carry_them() -> None:
    from keyport.cache._calls import forwarded

    assert forwarded("203.0.113.7", "Firefox/140") == (
        ("x-keyport-client-ip", "203.0.113.7"),
        ("x-keyport-user-agent", "Firefox/140"),
    )
    assert forwarded(None, None) == ()
    # A value gRPC metadata cannot carry is dropped, never failing the request.
    assert forwarded("203.0.113.7", "bad\nagent") == (("x-keyport-client-ip", "203.0.113.7"),)
    assert forwarded("\u00e9", "x" * 2000) == ()
