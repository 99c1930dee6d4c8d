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
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from routing.source import ConfigError, ConfigErrors, load_yaml, validate

SETTINGS_FILE = "switch.yaml"
DEFAULT_DATA_DIR = Path("data")

LogLevel = Literal["debug", "info", "warning", "error"]
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=3600)]

# RFC 1123 host names (the SIP domain is a host name, never an address with a port).
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None
    return value


class Listener(_Model):
    """One socket the switch listens on."""

    transport: Literal["udp", "tcp", "tls"]
    host: str = "127.0.0.1"
    port: Port = 5060

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _check_address(value)


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
        if not _HOSTNAME.match(value):
            raise ValueError(f"not a host name: {value!r}")
        return value.lower().rstrip(".")

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


class HttpListen(_Model):
    host: str = "127.0.0.1"
    port: Port = 8080

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _check_address(value)


class Settings(_Model):
    sip: SipSettings
    data_dir: Path | None = None
    log_level: LogLevel = "info"
    # Reserved for the admin API and Prometheus metrics (a later issue).
    admin: HttpListen = HttpListen()

    # Set by load_settings: the directory the file was read from.
    _config_dir: Path = PrivateAttr(default_factory=Path.cwd)

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
    errors = []
    tls = settings.sip.tls
    for field, value in (("certificate", tls.certificate), ("private_key", tls.private_key)):
        if value is not None and not settings.resolve(value).is_file():
            errors.append(doc.error(("sip", "tls", field), f"file not found: {value}"))
    if tls.ca_file is not None and not settings.resolve(tls.ca_file).is_file():
        errors.append(doc.error(("sip", "tls", "ca_file"), f"file not found: {tls.ca_file}"))
    if errors:
        raise ConfigErrors(errors)
    return settings
