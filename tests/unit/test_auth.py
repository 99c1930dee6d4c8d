"""Digest authentication (RFC 7616): vectors, nonces, replay, enumeration safety."""

from __future__ import annotations

import pytest

from switch.sip.auth import (
    Challenge,
    Credentials,
    NonceManager,
    NonceStatus,
    Verdict,
    answer_challenge,
    challenge_value,
    ha1,
    nonce_address,
    parse_auth_params,
    parse_challenge,
    parse_credentials,
    response_digest,
    verify,
)
from switch.sip.errors import ParseError

SECRET = b"0123456789abcdef0123456789abcdef"
PHONE = "192.0.2.5"  # the source address the nonces are issued to
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


def _verify(
    creds: Credentials,
    stored_ha1: str | None,
    nonces: NonceManager,
    *,
    now: float,
    address: str = PHONE,
) -> Verdict:
    """``verify`` of a REGISTER to pbx.test sent from ``address``."""
    return verify(
        creds,
        method="REGISTER",
        realm="pbx.test",
        stored_ha1=stored_ha1,
        nonces=nonces,
        now=now,
        address=address,
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_round_trip_client_answer_verifies(algorithm: str) -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(100.0, SALT, PHONE)
    creds = parse_credentials(_client_answer(nonce, algorithm=algorithm))
    verdict = verify(
        creds,
        method="REGISTER",
        realm="pbx.test",
        stored_ha1=ha1("401", "pbx.test", "secret401", algorithm),
        nonces=nonces,
        now=101.0,
        address=PHONE,
    )
    assert verdict is Verdict.OK


def test_wrong_password_and_unknown_user_get_the_same_verdict() -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(0.0, SALT, PHONE)
    wrong = parse_credentials(_client_answer(nonce, password="guess"))
    known = ha1("401", "pbx.test", "secret401")
    assert _verify(wrong, known, nonces, now=1.0) is Verdict.FAILED
    right = parse_credentials(_client_answer(nonce))
    assert _verify(right, None, nonces, now=1.0) is Verdict.FAILED


def test_nonce_count_replay_is_refused_and_a_higher_count_accepted() -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(0.0, SALT, PHONE)
    key = ha1("401", "pbx.test", "secret401")
    first = parse_credentials(_client_answer(nonce, nc=1))
    assert _verify(first, key, nonces, now=1.0) is Verdict.OK
    assert _verify(first, key, nonces, now=2.0) is Verdict.REPLAY
    second = parse_credentials(_client_answer(nonce, nc=2))
    assert _verify(second, key, nonces, now=3.0) is Verdict.OK


def test_wrong_password_does_not_burn_a_nonce_count() -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(0.0, SALT, PHONE)
    key = ha1("401", "pbx.test", "secret401")
    bad = parse_credentials(_client_answer(nonce, password="x", nc=1))
    _verify(bad, key, nonces, now=1.0)
    good = parse_credentials(_client_answer(nonce, nc=1))
    assert _verify(good, key, nonces, now=1.0) is Verdict.OK


def test_expired_or_foreign_nonce_with_right_password_is_stale() -> None:
    nonces = NonceManager(SECRET, lifetime=300.0)
    key = ha1("401", "pbx.test", "secret401")
    old = parse_credentials(_client_answer(nonces.issue(0.0, SALT, PHONE)))
    assert _verify(old, key, nonces, now=301.0) is Verdict.STALE
    other = NonceManager(b"another secret of 32 bytes......")
    foreign = parse_credentials(_client_answer(other.issue(0.0, SALT, PHONE)))
    assert _verify(foreign, key, nonces, now=1.0) is Verdict.STALE


def test_nonce_check_states() -> None:
    nonces = NonceManager(SECRET, lifetime=10.0)
    nonce = nonces.issue(5.0, SALT, PHONE)
    assert nonces.issued_at(nonce, PHONE) == 5.0
    assert nonces.check(nonce, 1, 6.0, PHONE) is NonceStatus.VALID
    assert nonces.check(nonce, 1, 16.0, PHONE) is NonceStatus.STALE
    assert nonces.check("not-a-nonce", 1, 6.0, PHONE) is NonceStatus.STALE
    assert nonces.check(nonce[:-2] + "AA", 1, 6.0, PHONE) is NonceStatus.STALE


def test_a_nonce_is_bound_to_the_address_it_was_issued_to() -> None:
    nonces = NonceManager(SECRET, lifetime=10.0)
    nonce = nonces.issue(5.0, SALT, PHONE)
    assert nonces.check(nonce, 1, 6.0, PHONE) is NonceStatus.VALID
    assert nonces.issued_at(nonce, "192.0.2.6") is None
    assert nonces.check(nonce, 1, 6.0, "192.0.2.6") is NonceStatus.STALE
    # The same time and salt for another address: another nonce.
    assert nonces.issue(5.0, SALT, "192.0.2.6") != nonce


def test_a_nonce_replayed_from_another_address_is_stale_not_failed() -> None:
    """Right digest, wrong address: a new challenge with stale=true, nothing burnt."""
    nonces = NonceManager(SECRET)
    key = ha1("401", "pbx.test", "secret401")
    creds = parse_credentials(_client_answer(nonces.issue(0.0, SALT, PHONE)))
    assert _verify(creds, key, nonces, now=1.0, address="198.51.100.7") is Verdict.STALE
    # Nothing was recorded for that nonce-count: the phone itself still gets in...
    assert _verify(creds, key, nonces, now=1.0) is Verdict.OK
    # ...and a wrong password from the other address is a failure, as anywhere.
    wrong = parse_credentials(_client_answer(creds.nonce, password="guess", nc=2))
    assert _verify(wrong, key, nonces, now=1.0, address="198.51.100.7") is Verdict.FAILED


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("192.0.2.5", "::ffff:192.0.2.5"),  # IPv4-mapped (a dual-stack socket)
        ("2001:db8::1", "[2001:db8::1]"),  # bracketed, as in a Via
        ("2001:db8::1", "2001:DB8:0::1"),  # another spelling
        ("fe80::1%eth0", "fe80::1"),  # zone left out
    ],
)
def test_one_address_in_several_spellings_keeps_its_nonce(one: str, other: str) -> None:
    assert nonce_address(one) == nonce_address(other)
    nonces = NonceManager(SECRET)
    assert nonces.check(nonces.issue(0.0, SALT, one), 1, 1.0, other) is NonceStatus.VALID


def test_replayed_nonces_expire_out_of_the_table_whatever_their_address() -> None:
    nonces = NonceManager(SECRET, lifetime=10.0)
    old = nonces.issue(0.0, SALT, PHONE)
    nonces.accept(old, 1, 1.0)
    nonces.accept(nonces.issue(20.0, SALT, "192.0.2.6"), 1, 20.0)
    assert old not in nonces._last_nc


def test_replay_table_is_bounded() -> None:
    nonces = NonceManager(SECRET, max_tracked=3)
    issued = [nonces.issue(0.0, bytes([i]) * 8, PHONE) for i in range(5)]
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
