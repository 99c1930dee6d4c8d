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

import re
from dataclasses import dataclass, field

from switch.sip.errors import ParseError

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


# --- ABNF (RFC 3261 §25.1) -------------------------------------------------
# Each rule is a regex fragment; every repetition is possessive (``++``, ``*+``)
# and character classes of adjacent rules are disjoint, so matching is linear
# in the input: no backtracking blow-up on hostile input.
#
#   escaped          =  "%" HEXDIG HEXDIG
ESCAPED = r"%[0-9A-Fa-f]{2}"

#   scheme           =  ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )     (RFC 3986)
SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*+"

#   user             =  1*( unreserved / escaped / user-unreserved )
#   user-unreserved  =  "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
#   unreserved       =  alphanum / mark
#   mark             =  "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
# Liberal: "#" is accepted unescaped (star codes such as ``*21#`` from phones).
USER = rf"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/#]|{ESCAPED})++"
# In the addr-spec form a user holding "," "?" or ";" MUST be in <> (§20).
USER_BARE = rf"(?:[A-Za-z0-9\-_.!~*'()&=+$/#]|{ESCAPED})++"

#   password         =  *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD = rf"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|{ESCAPED})*+"

#   hostname         =  *( domainlabel "." ) toplabel [ "." ]
#   domainlabel      =  alphanum / alphanum *( alphanum / "-" ) alphanum
#   IPv4address      =  1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
#   IPv6reference    =  "[" IPv6address "]"
# Liberal: "_" and edge "-" in labels are accepted (seen in the wild).
HOSTNAME = r"[A-Za-z0-9\-_]++(?:\.[A-Za-z0-9\-_]++)*+\.?+"
IPV6REFERENCE = r"\[[0-9A-Fa-f:.]++\]"
HOST = rf"(?:{HOSTNAME}|{IPV6REFERENCE})"

#   port             =  1*DIGIT        (0..65535, at most 5 digits)
PORT = (
    r"(?>6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}+)"
    r"(?![0-9])"
)

#   uri-parameters   =  *( ";" uri-parameter)
#   other-param      =  pname [ "=" pvalue ]
#   pname / pvalue   =  1*paramchar
#   paramchar        =  param-unreserved / unreserved / escaped
#   param-unreserved =  "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAMCHARS = rf"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|{ESCAPED})++"
URI_PARAMETERS = rf"(?:;{PARAMCHARS}(?:={PARAMCHARS})?+)*+"

#   headers          =  "?" header *( "&" header )
#   header           =  hname "=" hvalue
#   hname            =  1*( hnv-unreserved / unreserved / escaped )
#   hvalue           =  *( hnv-unreserved / unreserved / escaped )
#   hnv-unreserved   =  "[" / "]" / "/" / "?" / ":" / "+" / "$"
_HNV = rf"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|{ESCAPED})"
URI_HEADERS = rf"{_HNV}++={_HNV}*+(?:&{_HNV}++={_HNV}*+)*+"

#   SIP-URI  =  "sip:" [ userinfo ] hostport uri-parameters [ headers ]
#   userinfo =  ( user / telephone-subscriber ) [ ":" password ] "@"
SIP_URI = (
    rf"(?i:sips?):(?:{USER}(?::{PASSWORD})?+@)?+{HOST}(?::{PORT})?+"
    rf"{URI_PARAMETERS}(?:\?{URI_HEADERS})?+"
)
SIP_URI_BARE = rf"(?i:sips?):(?:{USER_BARE}(?::{PASSWORD})?+@)?+{HOST}(?::{PORT})?+"
_SIP_PARTS_RE = re.compile(
    rf"(?:(?P<user>{USER})(?::(?P<password>{PASSWORD}))?+@)?+(?P<host>{HOST})"
    rf"(?::(?P<port>{PORT}))?+(?P<params>{URI_PARAMETERS})(?:\?(?P<headers>{URI_HEADERS}))?+"
)

#   telephone-subscriber (RFC 3966), liberally: digits, visual separators,
#   "+*#", hex digits and pause characters, escapes; then its parameters.
TEL_NUMBER = rf"(?:[0-9A-Za-z+*#().\-]|{ESCAPED})++"
TEL_URI = rf"(?i:tel):{TEL_NUMBER}{URI_PARAMETERS}"
TEL_URI_BARE = rf"(?i:tel):{TEL_NUMBER}"
_TEL_PARTS_RE = re.compile(rf"(?P<user>{TEL_NUMBER})(?P<params>{URI_PARAMETERS})")

# absoluteURI of any other scheme, kept opaque: visible ASCII except the
# delimiters that end a URI in a header field (SP, DQUOTE, "<", ">"); in the
# addr-spec form also "," ";" "?" (RFC 3261 §20).
OTHER_URI = rf"(?!(?i:sips?|tel):){SCHEME}:[!#-;=?-~]++"
OTHER_URI_BARE = rf"(?!(?i:sips?|tel):){SCHEME}:[!#-+\--:=@-~]++"
_SCHEME_RE = re.compile(SCHEME)
_OTHER_RE = re.compile(r"[!#-;=?-~]++")

#   Request-URI / addr-spec  =  SIP-URI / SIPS-URI / absoluteURI
ANY_URI = rf"(?:{SIP_URI}|{TEL_URI}|{OTHER_URI})"
ANY_URI_BARE = rf"(?:{SIP_URI_BARE}|{TEL_URI_BARE}|{OTHER_URI_BARE})"


def _params(text: str) -> dict[str, str | None]:
    # ``text`` matched URI_PARAMETERS: ";" separated, never empty items.
    params: dict[str, str | None] = {}
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        params[name.lower()] = value if eq else None
    return params


def _check_port(port: str | None) -> int | None:
    if port is None:
        return None
    if len(port) > 5 or int(port) > 65535:
        raise ParseError("bad port")
    return int(port)


def parse_host(text: str) -> tuple[str, int | None]:
    """Parse ``hostport = host [ ":" port ]``; the host keeps IPv6 brackets.

    Raise ``ParseError`` when the host is not a hostname, an IPv4 address or an
    IPv6 reference, or the port is not ``1*DIGIT`` within 0..65535.
    """
    m = _HOSTPORT_RE.fullmatch(text)
    if m is None:
        raise ParseError("bad host")
    return m.group(1), _check_port(m.group(2))


_HOSTPORT_RE = re.compile(rf"({HOST})(?::({PORT}))?+")


def parse_uri(text: str) -> Uri:
    """Parse a URI; raise ``switch.sip.errors.ParseError`` when it is malformed.

    SIP and SIPS URIs are checked against RFC 3261 §25.1 (userinfo, hostport,
    uri-parameters, headers); ``tel:`` against RFC 3966 (liberally); any other
    scheme is kept opaque (``Uri.opaque``) once its scheme and characters are
    valid. Text is not unescaped: ``%xx`` stays as written; parameter names are
    lower-cased.
    """
    colon = text.find(":")
    if colon <= 0:
        raise ParseError("bad URI scheme")
    scheme = text[:colon].lower()
    if scheme == "sip" or scheme == "sips":
        m = _SIP_PARTS_RE.fullmatch(text, colon + 1)
        if m is None:
            raise ParseError("bad SIP URI")
        user, password, host, port, params, headers = m.groups()
        uri = Uri(scheme, user, password, host, _check_port(port))
        if params:
            uri.params = _params(params)
        if headers is not None:
            for item in headers.split("&"):
                name, _, value = item.partition("=")
                uri.headers[name] = value
        return uri
    if _SCHEME_RE.fullmatch(scheme) is None:
        raise ParseError("bad URI scheme")
    if scheme == "tel":
        m = _TEL_PARTS_RE.fullmatch(text, colon + 1)
        if m is None:
            raise ParseError("bad tel URI")
        uri = Uri("tel", user=m.group("user"))
        if m.group("params"):
            uri.params = _params(m.group("params"))
        return uri
    if _OTHER_RE.fullmatch(text, colon + 1) is None:
        raise ParseError("bad URI")
    return Uri(scheme, opaque=text[colon + 1 :])
