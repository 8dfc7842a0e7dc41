"""Second factors with the SDK: :func:`keyport.sign_in_challenge`, then an
authenticator app against a live keyport (``EnrollTotp``, ``ConfirmTotp``,
``SignIn``'s challenge, ``CompleteSignIn`` with TOTP and backup codes).

The test plays the app (:mod:`tests.authenticator`) on the real clock.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from keyport import (
    KeyportClient,
    Reason,
    SecondFactorAlreadyEnrolled,
    SecondFactorInvalid,
    SignInChallengeInvalid,
    bearer_metadata,
    sign_in_challenge,
)
from keyport.v1 import (
    oauth_pb2,
    oauth_service_pb2,
    session_pb2,
    session_service_pb2,
    two_factor_service_pb2,
    user_service_pb2,
)

from .authenticator import enroll, next_totp, totp, wrong_totp
from .support import PASSWORD, unique_email

#: A well-formed challenge that Keyport never issued: kpc_ and 43 base64url characters.
UNKNOWN_CHALLENGE = "kpc_" + "A" * 43


def _challenged(client: KeyportClient, email: str) -> session_pb2.SignInChallenge:
    response = client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=PASSWORD))
    challenge = sign_in_challenge(response)
    assert challenge is not None, f"SignIn answered {response.WhichOneof('outcome')}, not a challenge"
    assert response.WhichOneof("outcome") == "challenge"
    return challenge


def _complete(client: KeyportClient, challenge: str, **answer: str) -> session_service_pb2.CompleteSignInResponse:
    return client.sessions.CompleteSignIn(session_service_pb2.CompleteSignInRequest(challenge=challenge, **answer))


def test_sign_in_challenge_reads_sign_in_email_and_oauth_responses() -> None:
    challenge = session_pb2.SignInChallenge(challenge="kpc_x", factors=[session_pb2.SECOND_FACTOR_TOTP])
    grant = session_pb2.SessionGrant(token="kp_a.b")

    assert sign_in_challenge(session_service_pb2.SignInResponse(challenge=challenge)) == challenge
    assert sign_in_challenge(session_service_pb2.FinishEmailSignInResponse(challenge=challenge)) == challenge
    assert sign_in_challenge(oauth_service_pb2.FinishOAuthResponse(challenge=challenge)) == challenge

    assert sign_in_challenge(session_service_pb2.SignInResponse(session=grant)) is None
    assert sign_in_challenge(session_service_pb2.SignInResponse()) is None
    assert sign_in_challenge(session_service_pb2.FinishEmailSignInResponse(session=grant)) is None
    linked = oauth_service_pb2.FinishOAuthResponse(linked=oauth_pb2.LinkedAccount(provider_id="github"))
    assert sign_in_challenge(linked) is None


@pytest.mark.parametrize(
    ("at", "code"),
    [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_the_tests_authenticator_computes_rfc_6238_test_vectors(at: int, code: str) -> None:
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"
    assert totp(secret, at) == code


def test_enrolment_answers_a_secret_a_qr_code_and_ten_backup_codes(client: KeyportClient) -> None:
    email = unique_email("enrol")
    token = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD)).session.token
    metadata = bearer_metadata(token)

    started = client.two_factor.EnrollTotp(two_factor_service_pb2.EnrollTotpRequest(), metadata=metadata)
    assert re.fullmatch(r"[A-Z2-7]{32}", started.secret), "160 bits in base32"
    assert started.otpauth_uri.startswith("otpauth://totp/")
    assert b"<svg" in started.qr_code_svg
    now = datetime.now(timezone.utc)
    assert now < started.expires_at.ToDatetime(timezone.utc) <= now + timedelta(minutes=11)

    confirmed = client.two_factor.ConfirmTotp(
        two_factor_service_pb2.ConfirmTotpRequest(code=totp(started.secret)), metadata=metadata
    )
    assert len(confirmed.backup_codes) == 10
    assert len(set(confirmed.backup_codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", code) for code in confirmed.backup_codes)
    assert confirmed.session.assurance_level == session_pb2.ASSURANCE_LEVEL_AAL2

    factors = client.two_factor.ListFactors(two_factor_service_pb2.ListFactorsRequest(), metadata=metadata)
    assert factors.totp_enabled and factors.backup_codes_left == 10
    me = client.users.GetCurrentUser(user_service_pb2.GetCurrentUserRequest(), metadata=metadata)
    assert me.user.two_factor_enabled


def test_sign_in_needs_the_app_and_gives_an_aal2_session(client: KeyportClient) -> None:
    ada = enroll(client, "totp")

    challenge = _challenged(client, ada.email)
    assert re.fullmatch(r"kpc_[A-Za-z0-9_-]{43}", challenge.challenge)
    assert list(challenge.factors) == [session_pb2.SECOND_FACTOR_TOTP, session_pb2.SECOND_FACTOR_BACKUP_CODE]
    assert challenge.expires_at.ToDatetime(timezone.utc) > datetime.now(timezone.utc)

    with pytest.raises(SecondFactorInvalid) as wrong:
        _complete(client, challenge.challenge, totp_code=wrong_totp(ada.secret))
    assert wrong.value.reason == Reason.SECOND_FACTOR_INVALID
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # The challenge still works after a wrong answer; the next step's code signs in.
    code = next_totp(ada.secret)
    completed = _complete(client, challenge.challenge, totp_code=code)
    grant = completed.session
    assert grant.token.startswith("kp_")
    assert grant.user.email == ada.email
    assert grant.session.assurance_level == session_pb2.ASSURANCE_LEVEL_AAL2
    assert completed.backup_codes_left == 10
    looked_up = client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=grant.token))
    assert looked_up.session.assurance_level == session_pb2.ASSURANCE_LEVEL_AAL2

    with pytest.raises(SignInChallengeInvalid):
        _complete(client, challenge.challenge, totp_code=code)  # the challenge was used
    with pytest.raises(SecondFactorInvalid):
        _complete(client, _challenged(client, ada.email).challenge, totp_code=code)  # so was the step

    with pytest.raises(SecondFactorAlreadyEnrolled) as enrolled:
        client.two_factor.EnrollTotp(two_factor_service_pb2.EnrollTotpRequest(), metadata=bearer_metadata(grant.token))
    assert enrolled.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_each_backup_code_works_once(client: KeyportClient) -> None:
    bob = enroll(client, "backup")
    backup_code = bob.backup_codes[0]

    completed = _complete(client, _challenged(client, bob.email).challenge, backup_code=backup_code)
    assert completed.session.session.assurance_level == session_pb2.ASSURANCE_LEVEL_AAL2
    assert completed.backup_codes_left == 9

    with pytest.raises(SecondFactorInvalid):
        _complete(client, _challenged(client, bob.email).challenge, backup_code=backup_code)
    factors = client.two_factor.ListFactors(
        two_factor_service_pb2.ListFactorsRequest(), metadata=bearer_metadata(bob.token)
    )
    assert factors.backup_codes_left == 9


@pytest.mark.parametrize("challenge", [UNKNOWN_CHALLENGE, "", "kpc_short"])
def test_a_challenge_keyport_never_issued_is_invalid(client: KeyportClient, challenge: str) -> None:
    with pytest.raises(SignInChallengeInvalid) as err:
        _complete(client, challenge, totp_code="123456")
    assert err.value.reason == Reason.SIGN_IN_CHALLENGE_INVALID
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

