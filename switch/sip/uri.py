"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966).

The data model and its serialisation live here; ``parse_uri`` turns text into a
``Uri`` and raises ``ParseError`` on anything RFC 3261's ABNF rejects.

    SIP-URI  =  "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    SIPS-URI =  "sips:" [ userinfo ] hostport uri-parameters [ headers ]
    userinfo =  ( user / telephone-subscriber ) [ ":" password ] "@"
    hostport =  host [ ":" port ]
    host     =  hostname / IPv4address / IPv6reference

Any other scheme (``http:``, ``urn:``, ``mailto:``...) is kept opaque: accepted
in header fields, refused with 416 in a Request-URI by the parser's caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SIP_SCHEMES = frozenset({"sip", "sips"})


@dataclass(slots=True)
class Uri:
    """A parsed URI. ``host`` keeps IPv6 brackets; param names are lower-case.

    For ``tel:`` the number is in ``user`` and ``host`` is empty. For a scheme
    that is neither sip, sips nor tel, ``opaque`` holds everything after the colon.
    Parameter values are kept as written (escapes included) so that a URI
    serialises back to the same text.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    opaque: str | None = None

    @property
    def is_sip(self) -> bool:
        return self.scheme in SIP_SCHEMES

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-case, if any."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def host_bare(self) -> str:
        """Host without IPv6 brackets, for socket addresses."""
        if self.host.startswith("[") and self.host.endswith("]"):
            return self.host[1:-1]
        return self.host

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.user or "")
        else:
            if self.user is not None:
                parts.append(self.user)
                if self.password is not None:
                    parts.append(":" + self.password)
                parts.append("@")
            parts.append(self.host)
            if self.port is not None:
                parts.append(f":{self.port}")
        for name, value in self.params.items():
            parts.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(parts)

    def copy(self) -> Uri:
        return Uri(
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            dict(self.params),
            dict(self.headers),
            self.opaque,
        )


def parse_uri(text: str) -> Uri:
    """Parse a URI; raise ``switch.sip.errors.ParseError`` when it is malformed."""
    raise NotImplementedError
