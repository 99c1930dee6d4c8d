"""``DIR/switch.yaml``: what the switch listens on and how its SIP stack behaves.

Every field has a default except the SIP domain, so the smallest valid file is::

    sip:
      domain: pbx.test

Errors are reported by ``routing.source`` as ``file:line:col: field: message``.
Relative paths (TLS certificate and key, ``data_dir``) are relative to the
configuration directory. When ``data_dir`` is absent the switch uses ``data/``
in its working directory (``aiguilleur run --data-dir`` overrides both).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from routing.source import ConfigError, ConfigErrors, load_yaml, validate
from switch.directory import is_domain, normalize_domain

SETTINGS_FILE = "switch.yaml"
DEFAULT_DATA_DIR = Path("data")

LogLevel = Literal["debug", "info", "warning", "error"]
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None
    return value


def _check_networks(value: list[str]) -> list[str]:
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"not a network: {network!r}") from None
    return value


IpAddress = Annotated[str, AfterValidator(_check_address)]
Networks = Annotated[list[str], AfterValidator(_check_networks)]


class Listener(_Model):
    """One socket the switch listens on."""

    transport: Literal["udp", "tcp", "tls"]
    host: IpAddress = "127.0.0.1"
    port: Port = 5060


class TlsSettings(_Model):
    """Certificate and key (PEM) for the TLS listeners and outgoing TLS connections.

    When both are absent a self-signed certificate for the SIP domain is
    generated once into ``DATA_DIR/tls/`` (good for ``make run`` and tests, not
    for phones that verify certificates).
    """

    certificate: Path | None = None
    private_key: Path | None = None
    # Verify the certificate of peers we connect to (trunks). Phones connecting
    # to us are not asked for a certificate.
    verify_peer: bool = True
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _both_or_none(self) -> TlsSettings:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together")
        return self


class Timers(_Model):
    """RFC 3261 §17.1.1.1 timer bases, in seconds."""

    t1: Seconds = 0.5
    t2: Seconds = 4.0
    t4: Seconds = 5.0

    @model_validator(mode="after")
    def _ordered(self) -> Timers:
        if self.t2 < self.t1:
            raise ValueError("t2 must not be smaller than t1")
        return self


class Limits(_Model):
    """Load shedding: past these bounds the switch refuses work instead of queueing it."""

    max_message_size: Annotated[int, Field(ge=1500, le=1_048_576)] = 65535
    # RFC 3261 §18.1.1: requests larger than mtu - 200 go over TCP instead of UDP.
    udp_mtu: Annotated[int, Field(ge=576, le=65535)] = 1500
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    max_connections_per_host: Annotated[int, Field(ge=1, le=1_000_000)] = 256
    # Bytes queued on one connection's socket before the connection is dropped.
    max_send_buffer: Annotated[int, Field(ge=65536)] = 1_048_576
    idle_timeout: Seconds = 600.0
    connect_timeout: Seconds = 10.0


class SipSettings(_Model):
    domain: str
    # Server (responses) and User-Agent (requests) header value.
    server_name: str = "Aiguilleur"
    listen: list[Listener] = Field(
        default_factory=lambda: [
            Listener(transport="udp", port=5060),
            Listener(transport="tcp", port=5060),
            Listener(transport="tls", port=5061),
        ],
        min_length=1,
    )
    tls: TlsSettings = TlsSettings()
    timers: Timers = Timers()
    limits: Limits = Limits()

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        # An RFC 1123 host name: the SIP domain is never an address with a port.
        if not is_domain(value):
            raise ValueError(f"not a host name: {value!r}")
        return normalize_domain(value)

    @field_validator("listen")
    @classmethod
    def _unique(cls, value: list[Listener]) -> list[Listener]:
        seen: set[tuple[str, str, int]] = set()
        for listener in value:
            # UDP and TCP may share a port; two listeners of one kind may not.
            key = (listener.transport, listener.host, listener.port)
            if key in seen:
                raise ValueError(
                    f"listed twice: {listener.transport} {listener.host}:{listener.port}"
                )
            seen.add(key)
        return value


class AdminSettings(_Model):
    """The admin HTTP API: Prometheus metrics, routing reload, plans de secours
    (see docs/operations.md).

    Reads (``GET /metrics``) are open to whoever reaches ``host:port``, which is
    loopback by default. Requests that change routing are accepted from loopback
    peers only, unless ``token`` is set: then every peer must send
    ``Authorization: Bearer <token>``. The token lives in this file: keep the
    file readable by the switch's user only, or leave the API on loopback.
    """

    host: IpAddress = "127.0.0.1"
    port: Port = 8080
    token: Annotated[str, Field(min_length=16, max_length=256, pattern=r"^[!-~]+$")] | None = None


DigestAlgorithm = Literal["SHA-256", "MD5"]
# MD5 first: SIPp 3.6.1 answers only the first WWW-Authenticate and refuses
# anything but MD5 ("createAuthHeader: authentication must use MD5"), and so do
# many desk phones; pjsua2 2.15.1 answers the *last* challenge of a realm, so it
# still uses SHA-256. RFC 8760 §2.4 wants the preferred one first: reverse the
# list once every phone answers the first one it supports.
DEFAULT_DIGEST_ORDER: tuple[DigestAlgorithm, ...] = ("MD5", "SHA-256")


class KeepaliveSettings(_Model):
    """NAT keep-alives towards registered phones (see docs/registrar.md).

    Every ``interval`` seconds each eligible binding gets one ping, spread over
    the interval. UDP: ``udp: nat`` pings bindings whose REGISTER came from
    another address than their Contact (behind NAT), ``all`` every UDP binding,
    ``off`` none; ``method: options`` sends an OPTIONS (a binding whose OPTIONS
    transaction times out is marked unreachable), ``crlf`` a bare CRLF datagram
    that only keeps the NAT mapping open. TCP/TLS (``stream``): a CRLF ping on
    the connection the phone registered over, which also keeps the connection
    from being closed as idle.
    """

    interval: Annotated[float, Field(ge=0, le=3600)] = 30.0  # 0: no keep-alives
    udp: Literal["nat", "all", "off"] = "nat"
    method: Literal["options", "crlf"] = "options"
    stream: bool = True


class AdmissionSettings(_Model):
    """The brute-force throttle (``switch.admission.Admission``)."""

    # Failures (wrong digest, unknown user, undeclared device, unanswered
    # challenge) within ``window`` seconds that ban the source address.
    max_failures: Annotated[int, Field(ge=1, le=100_000)] = 10
    window: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    ban_seconds: Annotated[float, Field(gt=0, le=31_536_000)] = 86_400.0
    # Banned addresses get no answer at all (true) or 403 to their REGISTERs.
    silent: bool = False
    # A challenge left unanswered this long counts as one failure (scanners).
    challenge_grace: Annotated[float, Field(gt=0, le=3600)] = 32.0
    # Networks never counted nor banned (office NATs, trunks), e.g. 192.0.2.0/24.
    allow: Networks = Field(default_factory=list)


class RegistrarSettings(_Model):
    """REGISTER handling: expiry bounds, digest challenges, keep-alives, admission."""

    min_expires: Annotated[int, Field(ge=1, le=3600)] = 60
    max_expires: Annotated[int, Field(ge=1, le=2**31)] = 3600
    default_expires: Annotated[int, Field(ge=1, le=2**31)] = 3600
    max_contacts_per_aor: Annotated[int, Field(ge=1, le=1000)] = 10
    # One WWW-Authenticate per algorithm, in this order (see DEFAULT_DIGEST_ORDER).
    digest_algorithms: list[DigestAlgorithm] = Field(
        default_factory=lambda: list(DEFAULT_DIGEST_ORDER), min_length=1
    )
    # Seconds a nonce is accepted; an older one gets a new challenge with stale=true.
    nonce_lifetime: Annotated[float, Field(ge=1, le=86_400)] = 300.0
    keepalive: KeepaliveSettings = KeepaliveSettings()
    admission: AdmissionSettings = AdmissionSettings()

    @field_validator("digest_algorithms")
    @classmethod
    def _unique_algorithms(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an algorithm is listed twice")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> RegistrarSettings:
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError(
                "expected min_expires <= default_expires <= max_expires, got "
                f"{self.min_expires}, {self.default_expires}, {self.max_expires}"
            )
        return self


class MediaSettings(_Model):
    """The RTP relay: the address written in every SDP the switch sends, the
    port range its RTP/RTCP pairs come from, and the silence that ends a call."""

    address: IpAddress = "127.0.0.1"
    rtp_ports: tuple[Port, Port] = (20000, 29999)
    rtp_timeout: Annotated[float, Field(gt=0, le=3600)] = 30.0

    @field_validator("address")
    @classmethod
    def _reachable(cls, value: str) -> str:
        # Written in every SDP: c=0.0.0.0 means hold (RFC 3264 §8.4), so phones
        # would never send their audio. The relay binds this address too.
        if ipaddress.ip_address(value).is_unspecified:
            raise ValueError(
                f"{value} is written in every SDP, where it means hold: "
                "give the address phones and trunks reach the relay on"
            )
        return value

    @model_validator(mode="after")
    def _range(self) -> MediaSettings:
        low, high = self.rtp_ports
        if high - low < 3:
            raise ValueError(f"rtp_ports {low}-{high} holds no RTP/RTCP pair")
        return self


class CallSettings(_Model):
    """B2BUA calls: how long a callee rings, how long a call may last at most, and
    how long a graceful stop lets calls in progress end by themselves (new INVITEs
    get 503 meanwhile) before it hangs them up."""

    ring_timeout: Annotated[float, Field(gt=0, le=600)] = 60.0
    max_duration: Annotated[float, Field(gt=0, le=86_400)] = 14_400.0
    drain_grace: Annotated[float, Field(ge=0, le=3600)] = 5.0


class TrunkAddress(_Model):
    host: IpAddress
    port: Port = 5060


class TrunkSettings(_Model):
    """One SIP trunk (opérateur): where calls to public numbers go, where they come from.

    Requests whose source is ``address`` (host *and* port), or whose source host
    is in one of the ``inbound`` networks, are calls from the trunk: never
    challenged, and only for the direct numbers of our lines. Calls out (an
    authenticated line dialling a public number) are sent to ``address`` with
    the number in ``number_format``; a 401/407 from the trunk is answered with
    ``username`` and ``password`` (or ``ha1``, for the realm of the challenge).
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]
    address: TrunkAddress
    transport: Literal["udp", "tcp", "tls"] = "udp"
    username: str | None = None
    password: str | None = None
    ha1: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$|^[0-9a-f]{64}$")] | None = None
    inbound: Networks = Field(default_factory=list)  # extra source networks
    number_format: Literal["e164", "national"] = "e164"
    max_calls: Annotated[int, Field(ge=1, le=100_000)] | None = None

    @model_validator(mode="after")
    def _credentials(self) -> TrunkSettings:
        if self.password is not None and self.ha1 is not None:
            raise ValueError("password and ha1 exclude each other")
        if (self.password is not None or self.ha1 is not None) and not self.username:
            raise ValueError("credentials need a username")
        return self


class Settings(_Model):
    sip: SipSettings
    registrar: RegistrarSettings = RegistrarSettings()
    media: MediaSettings = MediaSettings()
    calls: CallSettings = CallSettings()
    trunks: list[TrunkSettings] = Field(default_factory=list)
    data_dir: Path | None = None
    log_level: LogLevel = "info"
    admin: AdminSettings = AdminSettings()

    # Set by load_settings: the directory the file was read from.
    _config_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("trunks")
    @classmethod
    def _unique_trunks(cls, value: list[TrunkSettings]) -> list[TrunkSettings]:
        names = [trunk.name for trunk in value]
        if len(set(names)) != len(names):
            raise ValueError("a trunk name is listed twice")
        return value

    @property
    def config_dir(self) -> Path:
        return self._config_dir

    def resolve(self, path: Path) -> Path:
        """A path of the file, made absolute against the configuration directory."""
        return path if path.is_absolute() else (self.config_dir / path).resolve()

    def data_path(self, override: Path | None = None) -> Path:
        """The data directory: ``--data-dir``, else ``data_dir``, else ``./data``."""
        if override is not None:
            return override.resolve()
        if self.data_dir is not None:
            return self.resolve(self.data_dir)
        return DEFAULT_DATA_DIR.resolve()


def load_settings(config_dir: Path) -> Settings:
    """Read and validate ``config_dir/switch.yaml``; raise ``ConfigErrors``."""
    path = Path(config_dir) / SETTINGS_FILE
    if not path.is_file():
        raise ConfigErrors([ConfigError(str(path), 1, 1, "", "file not found")])
    doc = load_yaml(path)
    settings = validate(doc, Settings)
    settings._config_dir = Path(config_dir).resolve()
    tls = settings.sip.tls
    errors = [
        doc.error(("sip", "tls", field), f"file not found: {value}")
        for field, value in (
            ("certificate", tls.certificate),
            ("private_key", tls.private_key),
            ("ca_file", tls.ca_file),
        )
        if value is not None and not settings.resolve(value).is_file()
    ]
    if errors:
        raise ConfigErrors(errors)
    return settings
