"""Digest authentication (RFC 7616): vectors, nonces, replay, enumeration safety."""

from __future__ import annotations

import pytest

from switch.sip.auth import (
    Challenge,
    NonceManager,
    NonceStatus,
    Verdict,
    answer_challenge,
    challenge_value,
    ha1,
    parse_auth_params,
    parse_challenge,
    parse_credentials,
    response_digest,
    verify,
)
from switch.sip.errors import ParseError

SECRET = b"0123456789abcdef0123456789abcdef"
SALT = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def test_rfc2617_md5_vector() -> None:
    key = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    digest = response_digest(
        key,
        algorithm="MD5",
        method="GET",
        uri="/dir/index.html",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        nc="00000001",
        cnonce="0a4f113b",
        qop="auth",
    )
    assert digest == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_vectors(algorithm: str, expected: str) -> None:
    key = ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    digest = response_digest(
        key,
        algorithm=algorithm,
        method="GET",
        uri="/dir/index.html",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        qop="auth",
    )
    assert digest == expected


def test_parse_auth_params_handles_quotes_escapes_and_commas() -> None:
    scheme, params = parse_auth_params(
        'Digest username="a\\"b", realm="pbx.test", uri="sip:pbx.test;x=1,y", nc=00000001'
    )
    assert scheme == "Digest"
    assert params == {
        "username": 'a"b',
        "realm": "pbx.test",
        "uri": "sip:pbx.test;x=1,y",
        "nc": "00000001",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('Digest username="a', "Bad authentication header: unterminated quote"),
        ("Digest username", "Bad authentication header: parameter without value"),
        ("Basic dXNlcjpwYXNz", "Bad authentication header: parameter without value"),
        (
            'Digest realm="r", nonce="n", uri="u", response="x"',
            "Digest credentials without username",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth',
            "Digest qop without cnonce or nc",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", response="x", '
            'qop=auth, cnonce="c", nc=1',
            "Digest nc is not 8 hex digits",
        ),
    ],
)
def test_malformed_credentials_are_parse_errors(value: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_credentials(value)
    assert info.value.reason == message
    assert info.value.status_code == 400


def _client_answer(
    nonce: str, *, password: str = "secret401", nc: int = 1, algorithm: str = "MD5"
) -> str:
    return answer_challenge(
        Challenge(realm="pbx.test", nonce=nonce, algorithm=algorithm, qop=("auth",)),
        username="401",
        password=password,
        method="REGISTER",
        uri="sip:pbx.test",
        cnonce="abcdef",
        nc=nc,
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_round_trip_client_answer_verifies(algorithm: str) -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(100.0, SALT)
    creds = parse_credentials(_client_answer(nonce, algorithm=algorithm))
    verdict = verify(
        creds,
        method="REGISTER",
        realm="pbx.test",
        stored_ha1=ha1("401", "pbx.test", "secret401", algorithm),
        nonces=nonces,
        now=101.0,
    )
    assert verdict is Verdict.OK


def test_wrong_password_and_unknown_user_get_the_same_verdict() -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(0.0, SALT)
    wrong = parse_credentials(_client_answer(nonce, password="guess"))
    known = ha1("401", "pbx.test", "secret401")
    assert (
        verify(wrong, method="REGISTER", realm="pbx.test", stored_ha1=known, nonces=nonces, now=1.0)
        is Verdict.FAILED
    )
    right = parse_credentials(_client_answer(nonce))
    assert (
        verify(right, method="REGISTER", realm="pbx.test", stored_ha1=None, nonces=nonces, now=1.0)
        is Verdict.FAILED
    )


def test_nonce_count_replay_is_refused_and_a_higher_count_accepted() -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(0.0, SALT)
    key = ha1("401", "pbx.test", "secret401")
    first = parse_credentials(_client_answer(nonce, nc=1))
    assert (
        verify(first, method="REGISTER", realm="pbx.test", stored_ha1=key, nonces=nonces, now=1.0)
        is Verdict.OK
    )
    assert (
        verify(first, method="REGISTER", realm="pbx.test", stored_ha1=key, nonces=nonces, now=2.0)
        is Verdict.REPLAY
    )
    second = parse_credentials(_client_answer(nonce, nc=2))
    assert (
        verify(second, method="REGISTER", realm="pbx.test", stored_ha1=key, nonces=nonces, now=3.0)
        is Verdict.OK
    )


def test_wrong_password_does_not_burn_a_nonce_count() -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(0.0, SALT)
    key = ha1("401", "pbx.test", "secret401")
    bad = parse_credentials(_client_answer(nonce, password="x", nc=1))
    verify(bad, method="REGISTER", realm="pbx.test", stored_ha1=key, nonces=nonces, now=1.0)
    good = parse_credentials(_client_answer(nonce, nc=1))
    assert (
        verify(good, method="REGISTER", realm="pbx.test", stored_ha1=key, nonces=nonces, now=1.0)
        is Verdict.OK
    )


def test_expired_or_foreign_nonce_with_right_password_is_stale() -> None:
    nonces = NonceManager(SECRET, lifetime=300.0)
    key = ha1("401", "pbx.test", "secret401")
    old = parse_credentials(_client_answer(nonces.issue(0.0, SALT)))
    assert (
        verify(old, method="REGISTER", realm="pbx.test", stored_ha1=key, nonces=nonces, now=301.0)
        is Verdict.STALE
    )
    other = NonceManager(b"another secret of 32 bytes......")
    foreign = parse_credentials(_client_answer(other.issue(0.0, SALT)))
    assert (
        verify(foreign, method="REGISTER", realm="pbx.test", stored_ha1=key, nonces=nonces, now=1.0)
        is Verdict.STALE
    )


def test_nonce_check_states() -> None:
    nonces = NonceManager(SECRET, lifetime=10.0)
    nonce = nonces.issue(5.0, SALT)
    assert nonces.issued_at(nonce) == 5.0
    assert nonces.check(nonce, 1, 6.0) is NonceStatus.VALID
    assert nonces.check(nonce, 1, 16.0) is NonceStatus.STALE
    assert nonces.check("not-a-nonce", 1, 6.0) is NonceStatus.STALE
    assert nonces.check(nonce[:-2] + "AA", 1, 6.0) is NonceStatus.STALE


def test_replay_table_is_bounded() -> None:
    nonces = NonceManager(SECRET, max_tracked=3)
    issued = [nonces.issue(0.0, bytes([i]) * 8) for i in range(5)]
    for n in issued:
        nonces.accept(n, 1, 0.5)
    assert len(nonces._last_nc) == 3


def test_challenge_value_round_trips_through_parse_challenge() -> None:
    value = challenge_value("pbx.test", "abc", algorithm="SHA-256", stale=True, opaque="o")
    assert value == (
        'Digest realm="pbx.test", nonce="abc", algorithm=SHA-256, qop="auth", '
        'opaque="o", stale=true'
    )
    assert parse_challenge(value) == Challenge("pbx.test", "abc", "SHA-256", ("auth",), "o", True)


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        NonceManager(b"short")
