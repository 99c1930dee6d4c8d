"""``DIR/directory.yaml``: the companies the switch hosts, their lines and phones.

Hosted PBX ("centrex"): each company (tenant) has its own SIP domain, which is
also the digest realm of its lines. One file describes them all::

    companies:
      - id: exemple-pme                  # stable identifier (logs, CDRs, API)
        name: Exemple PME
        domain: pbx.test                 # SIP domain = digest realm
        contract: {id: C-2000, name: Exemple PME}          # contrat principal
        secondary_contracts:                               # contrats secondaires
          - {id: C-2000-SAV, name: Service après-vente}
        main_number: "+33140000400"      # numéro principal (published)
        company_number: "+33140000400"   # numéro entreprise (presentation)
        groups:                          # groupements; 999 "Standard" is implicit
          - {number: 500, name: Commercial, strategy: sequential}
        speed_dials:                     # annuaire: numéros abrégés 700-869
          - {code: 700, number: "01 45 79 52 18", name: Fournisseur}
        restrictions:                    # the company's restriction table
          profiles:                      # profils modifiables 8 and 9 only
            8: {name: Commerciaux, classes: [free, national, mobile],
                allow: ["+41"], deny: ["0970"]}
          allow: ["+53"]                 # exceptions to the high-risk list
          deny: ["0897", "+44 9"]        # barred for every line
        lines:
          - extension: 401               # 4 + last two digits of the direct line
            name: Alice Martin           # display name
            direct_number: "+33140000401"
            ha1: {md5: ..., sha256: ...} # H(401:pbx.test:password), see below
            device: {model: vvx, mac: "00:04:f2:ab:cd:01", srtp: off}
            restrictions: {direct: 10, forwarded: 10}
            max_calls: 5
            voicemail: {enabled: true, pin_hash: "pbkdf2-sha256$..."}
            groups: [999, 500]
            contract: C-2000-SAV
            presented_number: direct     # direct | company | a group's number (500)

Rules (PRODUCT.md, hosted PBX; RESTRICTIONS.md):

- ``4xx`` is a phone with a direct line: ``direct_number`` is required and the
  extension is ``4`` followed by the last two digits of that number (``+33577110078``
  -> ``478``); ``601``-``620`` is a phone without one: ``direct_number`` is refused.
- Restriction profiles (1-10) default to 10 (direct line) or 1 (internal only),
  for direct calls and for forwarded calls alike; ``max_calls`` defaults to 5.
- A company's ``restrictions`` defines its profiles 8 and 9 (a name, the classes
  they allow, their own ``allow`` / ``deny`` prefixes) and two company-wide lists:
  ``allow`` (international prefixes lifted off the high-risk list) and ``deny``
  (barred for every line). Prefixes are read by ``routing.restrictions.parse_prefix``
  and the table is built once, at load (``Company.restriction_table``); the
  decision order is ``routing.restrictions.check``'s.
- ``groups`` lists the hunt groups the line belongs to: numbers declared in the
  company's ``groups``, or ``999`` (the "Standard" group, implicit, simultaneous:
  it rings every member after the main phone). Default: ``[999]``. When the list
  is given, it is the whole list: write ``999`` in it to stay in the Standard.
- Group options ``ring_s``, ``overflow``, ``night`` and the company's ``standard``
  (the 999's own) are described in ``docs/groups.md``; a line's ``mobile``
  (simultaneous ring) in ``docs/forwarding.md``.
- ``presented_number`` is the number shown on the line's calls out through a
  trunk (when its identity is not withheld): ``direct`` (default; the company
  number for a line without a direct line), ``company`` (``company_number``), or
  the number of a group of the company that has a ``direct_number``.
- ``device`` is the declared phone: ``model`` ``vvx`` (Poly VVX), ``67i``
  (Aastra/Mitel 67xxi and 68xxi) or ``softphone``; ``mac`` (12 hex digits, any
  separators, stored lower-case) is required for ``vvx`` and ``67i``; ``srtp``
  (``off``, ``offer``, ``require``; default ``off``) is what the switch offers
  the phone on calls to it (SDES-SRTP, ``docs/media.md``).
- Credentials: ``ha1`` holds ``H(extension ":" domain ":" password)`` per
  algorithm (``md5``, ``sha256``: RFC 7616 §3.4.2), at least one. A clear
  ``password:`` is accepted on input; the switch replaces it by ``ha1:`` in the
  file at start-up (:func:`rewrite_clear_passwords`), and ``aiguilleur passwd``
  prints the ``ha1:`` lines. The HA1 depends on the domain: renaming a domain
  invalidates its HA1s.
- Voicemail PINs are stored as a salted PBKDF2 hash (``pin_hash``); a clear
  ``pin:`` is accepted on input and rewritten like passwords.
- Phone numbers are written in quotes (YAML reads ``+33140000401`` as an integer
  and drops the ``+``) and stored in E.164 (``routing.numbering.normalize``).

Cross-checks, reported as ``file:line:col: path.to.field: message`` like every
other configuration error: duplicate company id, domain, extension (per company),
direct number (whole directory), MAC (whole directory), group number, speed-dial
code or contract id; unknown group or contract; an extension that is also a group
number; a restriction profile other than 8 or 9 defined by a company, an unknown
destination class, a string that is not a prefix, a company ``allow`` prefix that
is not international, more than 1000 prefixes in a list.

The loaded :class:`Directory` is immutable and indexed for the registrar
(``line_for``, ``ha1_for``), the router (``line_by_direct_number``) and the
provisioning server (``line_by_mac``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from routing.calendar import Calendar
from routing.linesettings import STANDARD_GROUP as STANDARD_GROUP
from routing.linesettings import VOICEMAIL as VOICEMAIL_NUMBER
from routing.numbering import DestinationKind, default_plan, normalize
from routing.program import Name
from routing.restrictions import (
    CUSTOM_PROFILES,
    MAX_PREFIXES,
    NO_TABLE,
    PROFILE_CLASSES,
    PROFILE_NAMES,
    CustomProfile,
    PrefixList,
    RestrictionTable,
    parse_prefix,
)
from routing.source import ConfigError, ConfigErrors, Loc, YamlDocument, load_yaml, validate
from routing.starcodes import SPEED_DIAL_RANGE
from switch.sip.auth import ha1 as compute_ha1

DIRECTORY_FILE = "directory.yaml"

DeviceModel = Literal["vvx", "67i", "softphone"]
# What the phone is set up to accept on calls to it (Poly sec.srtp.*, 67i SRTP 0/1/2).
SrtpMode = Literal["off", "offer", "require"]
HARDWARE_MODELS: tuple[DeviceModel, ...] = ("vvx", "67i")

# YAML key -> RFC 7616 algorithm name (as ``switch.sip.auth`` spells it).
HA1_ALGORITHMS: dict[str, str] = {"md5": "MD5", "sha256": "SHA-256"}

INTERNAL_ONLY_RANGE = range(601, 621)
MAX_GROUPS = 10  # "jusqu'à 10 autres groupements" besides the Standard
DEFAULT_GROUP_RING_S = 20  # seconds a group member rings before the next / overflow
RING_S = 5.0  # one ring, in seconds (a mobile "after N rings" starts after N × RING_S)
DEFAULT_MAX_CALLS = 5
DEFAULT_PROFILE_DIRECT_LINE = 10
DEFAULT_PROFILE_INTERNAL_ONLY = 1

PIN_HASH_SCHEME = "pbkdf2-sha256"
PIN_HASH_ITERATIONS = 20_000

# RFC 1123 host names (a SIP domain here is a host name, never an address).
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$"
)
_MAC_SEPARATORS = re.compile(r"[:\-. ]")
_MAC = re.compile(r"^[0-9a-f]{12}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PIN = re.compile(r"^[0-9]{4,8}$")
_PIN_HASH = re.compile(
    r"^pbkdf2-sha256\$([1-9][0-9]{3,7})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{43})$"
)
_THREE_DIGITS = re.compile(r"^[1-9][0-9]{2}$")
# Display names go into quoted-strings of From/To/P-Asserted-Identity.
_BAD_TEXT = re.compile(r'["\\\x00-\x1f\x7f]')


# -- scalar types -----------------------------------------------------------------------


def _yaml_digits(value: Any) -> Any:
    """An integer YAML read from digits, back to the digits as written.

    ruamel keeps the width of an integer written with leading zeros (``0123``):
    restore them rather than lose them.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    width = getattr(value, "_width", None) or 0
    return str(value).zfill(width) if value >= 0 else str(value)


def _three_digits(value: Any) -> Any:
    value = _yaml_digits(value)
    if isinstance(value, str) and not _THREE_DIGITS.match(value):
        raise PydanticCustomError("extension", "not a 3-digit internal number: '{v}'", {"v": value})
    return value


def is_extension(value: str) -> bool:
    """Three digits, not starting with 0 (the shape of extensions and group numbers)."""
    return _THREE_DIGITS.match(value) is not None


def is_domain(value: str) -> bool:
    """An RFC 1123 host name (what a company's SIP domain must be)."""
    return _HOSTNAME.match(value.strip()) is not None


def is_pin(value: str) -> bool:
    """4 to 8 digits."""
    return _PIN.match(value) is not None


def normalize_domain(value: str) -> str:
    """The form domains are compared and HA1s computed in: lower-case, no final dot."""
    return value.strip().lower().rstrip(".")


def _domain(value: Any) -> Any:
    if isinstance(value, str):
        if not _HOSTNAME.match(value.strip()):
            raise PydanticCustomError("domain", "not a host name: '{v}'", {"v": value})
        return normalize_domain(value)
    return value


def normalize_mac(value: str) -> str | None:
    """``00:04:F2:AB:CD:EF``, ``00-04-f2-ab-cd-ef``, ``0004.f2ab.cdef`` -> ``0004f2abcdef``.

    None when it is not 12 hexadecimal digits.
    """
    compact = _MAC_SEPARATORS.sub("", value.strip()).lower()
    return compact if _MAC.match(compact) else None


def _mac(value: Any) -> Any:
    value = _yaml_digits(value)
    if isinstance(value, str):
        mac = normalize_mac(value)
        if mac is None:
            raise PydanticCustomError(
                "mac", "not a MAC address (12 hexadecimal digits): '{v}'", {"v": value}
            )
        return mac
    return value


def _quoted_number(value: Any) -> None:
    if isinstance(value, bool | int):
        raise PydanticCustomError(
            "phone", "write phone numbers in quotes: YAML drops a leading '+' or '0'"
        )


def _e164(value: Any) -> Any:
    _quoted_number(value)
    if isinstance(value, str):
        number = normalize(value)
        if number.kind != "e164":
            raise PydanticCustomError("phone", "not a public phone number: '{v}'", {"v": value})
        return number.value
    return value


def _dialable(value: Any) -> Any:
    """A speed-dial target: a public number (stored E.164) or a short number (3BPQ)."""
    _quoted_number(value)
    if isinstance(value, str):
        number = normalize(value)
        if number.kind == "invalid":
            raise PydanticCustomError("phone", "not a phone number: '{v}'", {"v": value})
        return number.value
    return value


def _text(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if _BAD_TEXT.search(value):
            raise PydanticCustomError(
                "text", "quotes, backslashes and control characters are not allowed here"
            )
    return value


def _secret(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        raise PydanticCustomError("secret", "write the password in quotes")
    return value


def _pin(value: Any) -> Any:
    value = _yaml_digits(value)
    if isinstance(value, str) and not _PIN.match(value):
        raise PydanticCustomError("pin", "a PIN is 4 to 8 digits")
    return value


def _hex(pattern: re.Pattern[str], size: int) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if not pattern.match(value):
                raise PydanticCustomError("ha1", f"expected {size} hexadecimal digits")
        return value

    return check


def _pin_hash(value: Any) -> Any:
    if isinstance(value, str) and not _PIN_HASH.match(value):
        raise PydanticCustomError(
            "pin_hash", "expected pbkdf2-sha256$ITERATIONS$SALT$HASH (aiguilleur passwd --pin)"
        )
    return value


def _prefix(value: Any) -> Any:
    """A prefix of a restriction list (``routing.restrictions.parse_prefix``)."""
    _quoted_number(value)
    if isinstance(value, str):
        try:
            parse_prefix(value)
        except ValueError as exc:  # parse_prefix says what a prefix may be
            raise PydanticCustomError("prefix", "{why}", {"why": str(exc)}) from None
    return value


def _high_risk_exception(value: Any) -> Any:
    """A prefix of the company's ``allow`` list: international, since all it can do is
    lift the high-risk list (French, overseas and short numbers are never on it)."""
    value = _prefix(value)
    if isinstance(value, str):
        overseas = tuple("+" + code for code in default_plan().overseas_codes)
        for prefix in parse_prefix(value):
            if not prefix.value.startswith("+") or prefix.value.startswith(("+33", *overseas)):
                raise PydanticCustomError(
                    "prefix",
                    "the company's allow list only lifts the high-risk international list: "
                    "write an international prefix (+CC...), not '{v}'",
                    {"v": value},
                )
    return value


def _profile_class(value: Any) -> Any:
    if isinstance(value, str) and value not in PROFILE_CLASSES:
        raise PydanticCustomError(
            "class",
            "unknown class '{v}' (classes: {known})",
            {"v": value, "known": ", ".join(PROFILE_CLASSES)},
        )
    return value


def _custom_profile(value: int) -> int:
    if value not in CUSTOM_PROFILES:
        raise PydanticCustomError(
            "profile",
            "profile {v}: only 8 and 9 are the company's to define "
            "(1-7 and 10 are the operator's table)",
            {"v": value},
        )
    return value


Extension = Annotated[str, BeforeValidator(_three_digits)]
# Contract ids are the ones routing programs name (``contracts:``): the same type.
Identifier = Name
Domain = Annotated[str, BeforeValidator(_domain)]
Mac = Annotated[str, BeforeValidator(_mac)]
E164 = Annotated[str, BeforeValidator(_e164)]
Dialable = Annotated[str, BeforeValidator(_dialable)]
DisplayText = Annotated[str, BeforeValidator(_text), Field(min_length=1, max_length=64)]
Password = Annotated[str, BeforeValidator(_secret), Field(min_length=1, max_length=128)]
Pin = Annotated[str, BeforeValidator(_pin)]
PinHash = Annotated[str, BeforeValidator(_pin_hash)]
Md5Hex = Annotated[str, BeforeValidator(_hex(_HEX32, 32))]
Sha256Hex = Annotated[str, BeforeValidator(_hex(_HEX64, 64))]
Profile = Annotated[int, Field(ge=1, le=10)]
CustomProfileNumber = Annotated[int, AfterValidator(_custom_profile)]
ProfileClass = Annotated[str, BeforeValidator(_profile_class)]
RestrictionPrefix = Annotated[str, BeforeValidator(_prefix)]
HighRiskException = Annotated[str, BeforeValidator(_high_risk_exception)]
SpeedDialCode = Annotated[
    int,
    BeforeValidator(_yaml_digits),
    Field(ge=SPEED_DIAL_RANGE.start, le=SPEED_DIAL_RANGE.stop - 1),
]


# -- models of the file -----------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ha1(_Model):
    """``H(extension ":" domain ":" password)`` per algorithm, lower-case hex."""

    md5: Md5Hex | None = None
    sha256: Sha256Hex | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> Ha1:
        if self.md5 is None and self.sha256 is None:
            raise PydanticCustomError("ha1", "give at least one of md5, sha256")
        return self

    def for_algorithm(self, algorithm: str) -> str | None:
        """The HA1 for an RFC 7616 algorithm name (``MD5``, ``SHA-256``; ``-sess`` too)."""
        name = algorithm.upper().removesuffix("-SESS")
        if name == "MD5":
            return self.md5
        if name in ("SHA-256", "SHA256"):
            return self.sha256
        return None

    @classmethod
    def from_password(cls, extension: str, domain: str, password: str) -> Ha1:
        realm = normalize_domain(domain)
        return cls(
            md5=compute_ha1(extension, realm, password, "MD5"),
            sha256=compute_ha1(extension, realm, password, "SHA-256"),
        )


class Device(_Model):
    """The phone declared for a line (déclaration MAC + modèle)."""

    model: DeviceModel
    mac: Mac | None = None
    # SDES-SRTP on calls to the phone (docs/media.md): ``off`` plain RTP/AVP (default),
    # ``offer`` RTP/AVP with the switch's a=crypto (best effort), ``require`` RTP/SAVP.
    srtp: SrtpMode = "off"

    @model_validator(mode="after")
    def _hardware_has_mac(self) -> Device:
        if self.model in HARDWARE_MODELS and self.mac is None:
            raise PydanticCustomError(
                "device", "a {model} must be declared with its MAC address", {"model": self.model}
            )
        return self

    @property
    def is_hardware(self) -> bool:
        return self.model in HARDWARE_MODELS


class RestrictionsConfig(_Model):
    """Profils de restriction (RESTRICTIONS.md): one for direct calls, one for forwards."""

    direct: Profile | None = None
    forwarded: Profile | None = None


class CustomProfileConfig(_Model):
    """Profil modifiable (8 or 9): its name, the classes it allows, its own prefixes
    (``allow`` and ``deny``: longest match wins, deny wins ties; RESTRICTIONS.md)."""

    name: DisplayText | None = None
    classes: list[ProfileClass] = Field(max_length=len(PROFILE_CLASSES))
    allow: list[RestrictionPrefix] = Field(default_factory=list, max_length=MAX_PREFIXES)
    deny: list[RestrictionPrefix] = Field(default_factory=list, max_length=MAX_PREFIXES)


class CompanyRestrictionsConfig(_Model):
    """The company's restriction table: profiles 8 and 9, and two lists for every line:
    ``allow`` (exceptions to the high-risk list) and ``deny`` (barred)."""

    profiles: dict[CustomProfileNumber, CustomProfileConfig] = Field(default_factory=dict)
    allow: list[HighRiskException] = Field(default_factory=list, max_length=MAX_PREFIXES)
    deny: list[RestrictionPrefix] = Field(default_factory=list, max_length=MAX_PREFIXES)


class VoicemailConfig(_Model):
    enabled: bool = True
    pin: Pin | None = None  # clear, input only: rewritten to pin_hash
    pin_hash: PinHash | None = None
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)] | None = None

    @model_validator(mode="after")
    def _one_pin(self) -> VoicemailConfig:
        if self.pin is not None and self.pin_hash is not None:
            raise PydanticCustomError("pin", "give pin or pin_hash, not both")
        return self


class ContractConfig(_Model):
    id: Identifier
    name: Annotated[str, BeforeValidator(_text), Field(max_length=128)] = ""


class NightConfig(_Model):
    """Service de nuit: where a group's calls go at night (``docs/groups.md``)."""

    destination: Dialable  # an extension, a group number or a public number
    calendar: Calendar | None = None  # open: day; closed: night; none: manual only


class GroupConfig(_Model):
    """A groupement: phones ringing together or one after another behind one number."""

    number: Extension
    name: DisplayText
    strategy: Literal["simultaneous", "sequential"] = "simultaneous"
    direct_number: E164 | None = None
    ring_s: Annotated[int, Field(ge=1, le=120)] = DEFAULT_GROUP_RING_S  # per member
    overflow: Dialable | None = None  # after the last member: extension, group or number
    night: NightConfig | None = None


class MobileConfig(_Model):
    """Simultaneous ring with a mobile (``docs/forwarding.md``)."""

    number: E164
    mode: Literal["simultaneous", "after"] = "simultaneous"
    rings: Annotated[int, Field(ge=1, le=12)] = 3  # "after": rings of the desk phone first


class SpeedDialConfig(_Model):
    """One entry of the company directory (annuaire): ``code`` 700-869 dials ``number``."""

    code: SpeedDialCode
    number: Dialable
    name: DisplayText


class LineConfig(_Model):
    extension: Extension
    name: DisplayText
    direct_number: E164 | None = None
    password: Password | None = None  # clear, input only: rewritten to ha1
    ha1: Ha1 | None = None
    device: Device
    restrictions: RestrictionsConfig = RestrictionsConfig()
    max_calls: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_MAX_CALLS
    voicemail: VoicemailConfig = VoicemailConfig()
    groups: list[Extension] | None = None
    contract: Identifier | None = None
    mobile: MobileConfig | None = None
    # The number shown on calls out (CLIP): the direct line, the company number, or
    # a group's direct number (the group's number, e.g. 500).
    presented_number: Literal["direct", "company"] | Extension = "direct"


class StandardConfig(_Model):
    """The implicit Standard group (``999``): its ring time and night service."""

    ring_s: Annotated[int, Field(ge=1, le=120)] = DEFAULT_GROUP_RING_S
    overflow: Dialable | None = None
    night: NightConfig | None = None


class CompanyConfig(_Model):
    id: Identifier
    name: DisplayText
    domain: Domain
    contract: ContractConfig
    secondary_contracts: list[ContractConfig] = Field(default_factory=list)
    main_number: E164
    company_number: E164 | None = None
    groups: list[GroupConfig] = Field(default_factory=list, max_length=MAX_GROUPS)
    standard: StandardConfig = StandardConfig()
    speed_dials: list[SpeedDialConfig] = Field(default_factory=list)
    restrictions: CompanyRestrictionsConfig = CompanyRestrictionsConfig()
    lines: list[LineConfig] = Field(default_factory=list)


class DirectoryFile(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, title="Aiguilleur company directory")

    companies: list[CompanyConfig] = Field(default_factory=list)


# -- the loaded directory ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestrictionProfiles:
    direct: int
    forwarded: int


@dataclass(frozen=True, slots=True)
class Voicemail:
    enabled: bool = True
    pin_hash: str | None = None
    email: str | None = None

    def check_pin(self, pin: str) -> bool:
        """True when ``pin`` matches; a box without a PIN accepts none."""
        return self.pin_hash is not None and verify_pin(pin, self.pin_hash)


@dataclass(frozen=True, slots=True)
class Contract:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Night:
    destination: str
    calendar: Calendar | None = None


@dataclass(frozen=True, slots=True)
class Group:
    number: str
    name: str
    strategy: Literal["simultaneous", "sequential"]
    direct_number: str | None = None
    ring_s: int = DEFAULT_GROUP_RING_S
    overflow: str | None = None
    night: Night | None = None


STANDARD = Group(STANDARD_GROUP, "Standard", "simultaneous")


@dataclass(frozen=True, slots=True)
class Mobile:
    """A line's mobile: rung with the desk phone (``simultaneous``) or ``after``
    ``rings`` rings of it (``RING_S`` seconds each), through the trunk."""

    number: str
    mode: Literal["simultaneous", "after"] = "simultaneous"
    rings: int = 3

    @property
    def delay_s(self) -> float:
        return 0.0 if self.mode == "simultaneous" else self.rings * RING_S


def _night(cfg: NightConfig | None) -> Night | None:
    return None if cfg is None else Night(cfg.destination, cfg.calendar)


@dataclass(frozen=True, slots=True)
class SpeedDial:
    code: str
    number: str
    name: str


@dataclass(frozen=True, slots=True)
class Line:
    """One phone line of a company, with everything resolved (defaults, HA1, profiles)."""

    company: str  # the company's id
    domain: str
    extension: str
    name: str
    direct_number: str | None
    device: Device
    ha1: Ha1
    restrictions: RestrictionProfiles
    max_calls: int
    voicemail: Voicemail
    groups: frozenset[str]
    contract: str
    mobile: Mobile | None = None
    presented_number: str = "direct"  # "direct" | "company" | a group's number

    @property
    def key(self) -> str:
        """``extension@domain``: the registrar's and the admission throttle's key."""
        return f"{self.extension}@{self.domain}"

    @property
    def aor(self) -> str:
        """The address-of-record ``sip:extension@domain``."""
        return f"sip:{self.extension}@{self.domain}"

    @property
    def has_direct_line(self) -> bool:
        return self.direct_number is not None

    def ha1_for(self, algorithm: str) -> str | None:
        return self.ha1.for_algorithm(algorithm)


@dataclass(frozen=True, slots=True)
class Company:
    id: str
    name: str
    domain: str
    contract: Contract
    secondary_contracts: tuple[Contract, ...]
    main_number: str
    company_number: str
    groups: tuple[Group, ...]  # declared ones; STANDARD is implicit
    speed_dials: tuple[SpeedDial, ...]
    lines: tuple[Line, ...]
    standard: Group = STANDARD  # the implicit 999, with its company settings
    restriction_table: RestrictionTable = NO_TABLE  # profiles 8/9, allow/deny prefixes
    _by_extension: Mapping[str, Line] = field(init=False, repr=False, compare=False)
    _by_code: Mapping[str, SpeedDial] = field(init=False, repr=False, compare=False)
    _groups: Mapping[str, Group] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "_by_extension", MappingProxyType({ln.extension: ln for ln in self.lines}))
        set_(self, "_by_code", MappingProxyType({sd.code: sd for sd in self.speed_dials}))
        groups = {STANDARD_GROUP: self.standard} | {g.number: g for g in self.groups}
        set_(self, "_groups", MappingProxyType(groups))

    def line(self, extension: str) -> Line | None:
        return self._by_extension.get(extension)

    def speed_dial(self, code: str | int) -> SpeedDial | None:
        return self._by_code.get(str(code))

    def group(self, number: str) -> Group | None:
        """A declared group, or the implicit Standard (``999``)."""
        return self._groups.get(number)

    def group_members(self, number: str) -> tuple[Line, ...]:
        """Members of a group, in file order (the order a sequential group rings)."""
        return tuple(ln for ln in self.lines if number in ln.groups)

    @property
    def main_line(self) -> Line | None:
        """The phone carrying the main number (poste accueil), if one does."""
        return next((ln for ln in self.lines if ln.direct_number == self.main_number), None)

    @property
    def contracts(self) -> tuple[Contract, ...]:
        return (self.contract, *self.secondary_contracts)


class Directory:
    """Every company and line, immutable, with the lookups the switch needs."""

    __slots__ = ("_by_direct", "_by_domain", "_by_id", "_by_mac", "_companies")

    def __init__(self, companies: Iterable[Company] = ()) -> None:
        self._companies = tuple(companies)
        self._by_id = {c.id: c for c in self._companies}
        self._by_domain = {c.domain: c for c in self._companies}
        self._by_direct: dict[str, tuple[Company, Line]] = {}
        self._by_mac: dict[str, tuple[Company, Line]] = {}
        for company in self._companies:
            for line in company.lines:
                if line.direct_number is not None:
                    self._by_direct[line.direct_number] = (company, line)
                if line.device.mac is not None:
                    self._by_mac[line.device.mac] = (company, line)

    @property
    def companies(self) -> tuple[Company, ...]:
        return self._companies

    def __len__(self) -> int:
        """The number of lines."""
        return sum(len(c.lines) for c in self._companies)

    def __iter__(self) -> Iterator[tuple[Company, Line]]:
        for company in self._companies:
            for line in company.lines:
                yield company, line

    def company(self, company_id: str) -> Company | None:
        return self._by_id.get(company_id)

    def company_for_domain(self, domain: str) -> Company | None:
        return self._by_domain.get(normalize_domain(domain))

    def line_for(self, user: str, domain: str) -> tuple[Company, Line] | None:
        """The line whose extension is ``user`` in the company of ``domain``."""
        company = self._by_domain.get(normalize_domain(domain))
        if company is None:
            return None
        line = company.line(user)
        return None if line is None else (company, line)

    def line_by_direct_number(self, number: str) -> tuple[Company, Line] | None:
        """The line of a direct number (E.164, or as dialled: normalised first)."""
        found = self._by_direct.get(number)
        if found is None:
            normal = normalize(number)
            if normal.kind == "e164":
                found = self._by_direct.get(normal.value)
        return found

    def line_by_mac(self, mac: str) -> tuple[Company, Line] | None:
        normal = normalize_mac(mac)
        return None if normal is None else self._by_mac.get(normal)

    def ha1_for(self, user: str, domain: str, algorithm: str) -> str | None:
        """The stored HA1 of ``user`` in realm ``domain`` for ``algorithm``, or None.

        None for an unknown user as for a missing algorithm: the caller answers
        both like a wrong password (same challenge, same failure, same timing),
        so extensions cannot be enumerated.
        """
        found = self.line_for(user, domain)
        return None if found is None else found[1].ha1_for(algorithm)


# -- PIN hashes ------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_pin(pin: str, salt: bytes, iterations: int = PIN_HASH_ITERATIONS) -> str:
    """``pbkdf2-sha256$ITERATIONS$SALT$HASH`` (base64 without padding); ``salt`` >= 12 bytes.

    A 4-digit PIN is 10,000 guesses whatever the hash: this keeps it out of
    sight in the file and in backups, it does not make it strong.
    """
    if len(salt) < 12:
        raise ValueError("salt too short")
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations)
    return f"{PIN_HASH_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_pin(pin: str, stored: str) -> bool:
    m = _PIN_HASH.match(stored)
    if m is None:
        return False
    iterations, salt, expected = int(m.group(1)), _unb64(m.group(2)), _unb64(m.group(3))
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(digest, expected)


def _line_salt(extension: str, domain: str) -> bytes:
    # Deterministic salt for a clear PIN hashed in memory at load time (the file
    # itself gets a random salt when rewritten).
    return hashlib.sha256(f"aiguilleur-pin:{extension}@{domain}".encode()).digest()[:16]


# -- loading ---------------------------------------------------------------------------


def load_directory(config_dir: Path) -> Directory:
    """Read and check ``config_dir/directory.yaml``; an absent file is an empty directory.

    Raises ``ConfigErrors`` with every problem found.
    """
    path = Path(config_dir) / DIRECTORY_FILE
    if not path.exists():
        return Directory()
    doc = load_yaml(path)
    return build_directory(doc, validate(doc, DirectoryFile))


def build_directory(doc: YamlDocument, data: DirectoryFile) -> Directory:
    """Cross-check a validated file and build the :class:`Directory` (or raise)."""
    checker = _Checker(doc)
    companies = [checker.company(i, c) for i, c in enumerate(data.companies)]
    if checker.errors:
        raise ConfigErrors(checker.errors)
    return Directory(companies)


class _Checker:
    """Collects every cross-check error of one file while building its companies."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.errors: list[ConfigError] = []
        self.company_ids: dict[str, Loc] = {}
        self.domains: dict[str, Loc] = {}
        self.contracts: dict[str, Loc] = {}
        self.numbers: dict[str, tuple[str, Loc]] = {}  # E.164 -> (company id, where)
        self.macs: dict[str, Loc] = {}

    def error(self, loc: Loc, message: str) -> None:
        self.errors.append(self.doc.error(loc, message))

    def where(self, loc: Loc) -> str:
        line, _ = self.doc.position(loc)
        return f"{self.doc.path}:{line}"

    def unique(self, seen: dict[str, Loc], key: str, loc: Loc, what: str) -> bool:
        first = seen.get(key)
        if first is not None:
            self.error(loc, f"{what} {key} already defined at {self.where(first)}")
            return False
        seen[key] = loc
        return True

    def number(self, company: str, number: str, loc: Loc, what: str) -> None:
        """A public number routes to one place: lines and groups of the whole directory."""
        first = self.numbers.get(number)
        if first is not None:
            self.error(loc, f"{what} {number} already used at {self.where(first[1])}")
        else:
            self.numbers[number] = (company, loc)

    def company(self, i: int, cfg: CompanyConfig) -> Company:
        at: Loc = ("companies", i)
        self.unique(self.company_ids, cfg.id, (*at, "id"), "company")
        self.unique(self.domains, cfg.domain, (*at, "domain"), "domain")
        contracts = [cfg.contract, *cfg.secondary_contracts]
        locs: list[Loc] = [(*at, "contract", "id")] + [
            (*at, "secondary_contracts", k, "id") for k in range(len(cfg.secondary_contracts))
        ]
        for contract, loc in zip(contracts, locs, strict=True):
            self.unique(self.contracts, contract.id, loc, "contract")
        contract_ids = {c.id for c in contracts}

        groups = self.groups(at, cfg)
        group_numbers = {g.number for g in groups} | {STANDARD_GROUP}
        speed_dials = self.speed_dials(at, cfg)

        extensions: dict[str, Loc] = {}
        lines = []
        for k, line_cfg in enumerate(cfg.lines):
            line = self.line((*at, "lines", k), cfg, line_cfg, group_numbers, contract_ids)
            loc = (*at, "lines", k, "extension")
            if line.extension in group_numbers - {STANDARD_GROUP}:
                self.error(loc, f"extension {line.extension} is also a group number")
            if self.unique(extensions, line.extension, loc, "extension"):
                lines.append(line)

        main_owner = self.numbers.get(cfg.main_number)
        if main_owner is None or main_owner[0] != cfg.id:
            # Either a number of its own, or the direct line of one of its phones.
            self.number(cfg.id, cfg.main_number, (*at, "main_number"), "number")
        return Company(
            id=cfg.id,
            name=cfg.name,
            domain=cfg.domain,
            contract=Contract(cfg.contract.id, cfg.contract.name),
            secondary_contracts=tuple(Contract(c.id, c.name) for c in cfg.secondary_contracts),
            main_number=cfg.main_number,
            company_number=cfg.company_number or cfg.main_number,
            groups=groups,
            standard=Group(
                STANDARD_GROUP,
                STANDARD.name,
                "simultaneous",
                ring_s=cfg.standard.ring_s,
                overflow=cfg.standard.overflow,
                night=_night(cfg.standard.night),
            ),
            speed_dials=speed_dials,
            lines=tuple(lines),
            restriction_table=restriction_table(cfg.restrictions),
        )

    def groups(self, at: Loc, cfg: CompanyConfig) -> tuple[Group, ...]:
        seen: dict[str, Loc] = {}
        out = []
        for k, g in enumerate(cfg.groups):
            loc: Loc = (*at, "groups", k, "number")
            if g.number == STANDARD_GROUP:
                self.error(loc, "999 is the Standard group: it exists without being declared")
                continue
            if not self._free_internal_number(g.number, loc):
                continue
            if not self.unique(seen, g.number, loc, "group"):
                continue
            if g.direct_number is not None:
                self.number(cfg.id, g.direct_number, (*at, "groups", k, "direct_number"), "number")
            out.append(
                Group(
                    g.number,
                    g.name,
                    g.strategy,
                    g.direct_number,
                    g.ring_s,
                    g.overflow,
                    _night(g.night),
                )
            )
        return tuple(out)

    def _free_internal_number(self, number: str, loc: Loc) -> bool:
        if number == VOICEMAIL_NUMBER:
            self.error(loc, "888 is the voicemail number")
            return False
        if int(number) in SPEED_DIAL_RANGE:
            self.error(loc, f"{number} is in the speed-dial range 700-869")
            return False
        return True

    def speed_dials(self, at: Loc, cfg: CompanyConfig) -> tuple[SpeedDial, ...]:
        seen: dict[str, Loc] = {}
        out = []
        for k, sd in enumerate(cfg.speed_dials):
            code = str(sd.code)
            if self.unique(seen, code, (*at, "speed_dials", k, "code"), "speed-dial code"):
                out.append(SpeedDial(code, sd.number, sd.name))
        return tuple(out)

    def line(
        self,
        at: Loc,
        company: CompanyConfig,
        cfg: LineConfig,
        group_numbers: set[str],
        contract_ids: set[str],
    ) -> Line:
        ext = cfg.extension
        direct_line = ext.startswith("4")
        if direct_line:
            if cfg.direct_number is None:
                self.error(
                    (*at, "direct_number"),
                    f"extension {ext} is a direct line (4xx): give its direct_number",
                )
            elif cfg.direct_number[-2:] != ext[1:]:
                self.error(
                    (*at, "extension"),
                    f"extension of direct line {cfg.direct_number} must be "
                    f"4{cfg.direct_number[-2:]} (4 + its last two digits)",
                )
            else:
                self.number(company.id, cfg.direct_number, (*at, "direct_number"), "number")
        elif int(ext) in INTERNAL_ONLY_RANGE:
            if cfg.direct_number is not None:
                self.error(
                    (*at, "direct_number"),
                    f"extension {ext} is internal only (601-620): a direct line needs a 4xx "
                    f"extension (4{cfg.direct_number[-2:]})",
                )
        else:
            self.error(
                (*at, "extension"),
                f"extension {ext}: 4xx (with a direct line) or 601-620 (internal only)",
            )

        if cfg.password is not None and cfg.ha1 is not None:
            self.error((*at, "password"), "give password or ha1, not both")
        elif cfg.password is None and cfg.ha1 is None:
            self.error((*at, "ha1"), "no credentials: give ha1 (aiguilleur passwd) or password")
        if cfg.password is not None:
            ha1 = Ha1.from_password(ext, company.domain, cfg.password)
        else:
            ha1 = cfg.ha1 or Ha1(md5="0" * 32)  # only reached with an error recorded

        if cfg.device.mac is not None:
            self.unique(self.macs, cfg.device.mac, (*at, "device", "mac"), "MAC")

        groups = [STANDARD_GROUP] if cfg.groups is None else cfg.groups
        for k, number in enumerate(groups):
            if number not in group_numbers:
                known = ", ".join(sorted(group_numbers))
                self.error((*at, "groups", k), f"unknown group {number} (groups: {known})")
        presented = cfg.presented_number
        if presented not in ("direct", "company"):
            group = next((g for g in company.groups if g.number == presented), None)
            if group is None or group.direct_number is None:
                self.error(
                    (*at, "presented_number"),
                    f"group {presented} has no direct_number to present "
                    "(direct, company, or a group with a direct_number)",
                )
        contract = cfg.contract or company.contract.id
        if contract not in contract_ids:
            self.error(
                (*at, "contract"),
                f"unknown contract '{contract}' (contracts: {', '.join(sorted(contract_ids))})",
            )

        default_profile = (
            DEFAULT_PROFILE_DIRECT_LINE if direct_line else DEFAULT_PROFILE_INTERNAL_ONLY
        )
        vm = cfg.voicemail
        pin_hash = vm.pin_hash
        if vm.pin is not None:
            pin_hash = hash_pin(vm.pin, _line_salt(ext, company.domain))
        return Line(
            company=company.id,
            domain=company.domain,
            extension=ext,
            name=cfg.name,
            direct_number=cfg.direct_number if direct_line else None,
            device=cfg.device,
            ha1=ha1,
            restrictions=RestrictionProfiles(
                direct=cfg.restrictions.direct or default_profile,
                forwarded=cfg.restrictions.forwarded or default_profile,
            ),
            max_calls=cfg.max_calls,
            voicemail=Voicemail(vm.enabled, pin_hash, vm.email),
            groups=frozenset(groups),
            contract=contract,
            mobile=None
            if cfg.mobile is None
            else Mobile(cfg.mobile.number, cfg.mobile.mode, cfg.mobile.rings),
            presented_number=presented,
        )


def restriction_table(cfg: CompanyRestrictionsConfig) -> RestrictionTable:
    """The company's table, built once at load (every prefix already checked)."""
    return RestrictionTable(
        profiles=tuple(
            CustomProfile(
                number,
                profile.name or PROFILE_NAMES[number],
                frozenset(_kind(k) for k in profile.classes),
                PrefixList.parse(profile.allow),
                PrefixList.parse(profile.deny),
            )
            for number, profile in sorted(cfg.profiles.items())
        ),
        allow=PrefixList.parse(cfg.allow),
        deny=PrefixList.parse(cfg.deny),
    )


def _kind(name: str) -> DestinationKind:
    """A class name ``_profile_class`` has checked (one of ``PROFILE_CLASSES``)."""
    return cast(DestinationKind, name)


# -- clear secrets -> hashes, in the file ----------------------------------------------


def rewrite_clear_passwords(path: Path, *, salt_source: Any = os.urandom) -> int:
    """Replace every ``password:`` by its ``ha1:`` map and every ``pin:`` by ``pin_hash:``.

    The file is edited round-trip (comments, order and layout kept) and written
    atomically. Returns the number of secrets replaced; 0 when there is nothing
    to replace or the file cannot be written (the caller logs a warning: the
    loaded directory works from the clear values in memory meanwhile). Entries
    that would not load (no valid domain, both password and ha1...) are left
    for ``load_directory`` to report. Raises ``ConfigErrors`` on a YAML syntax
    error, like ``load_directory``.
    """
    path = Path(path)
    if not path.is_file() or not os.access(path, os.W_OK):
        return 0
    text = path.read_text(encoding="utf-8")
    if "password" not in text and "pin" not in text:
        return 0
    load_yaml(path)  # located errors for a broken file
    _, sequence, offset = load_yaml_guess_indent(text)
    yaml = YAML(typ="rt")
    yaml.indent(mapping=_mapping_indent(text), sequence=sequence or 2, offset=offset or 0)
    yaml.width = 4096
    yaml.preserve_quotes = True
    data = yaml.load(text)
    count = _rewrite_data(data, salt_source)
    if count == 0:
        return 0
    if not _write(path, yaml, data):
        return 0
    return count


def _mapping_indent(text: str) -> int:
    """How far a block mapping's keys sit from their parent key (2 unless seen otherwise)."""
    previous: tuple[int, bool] | None = None  # (indent, opens a block)
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if previous and previous[1] and not stripped.startswith("-") and indent > previous[0]:
            return indent - previous[0]
        opens = stripped.endswith(":") and not stripped.startswith("-")
        previous = (indent, opens)
    return 2


def _rewrite_data(data: Any, salt_source: Any) -> int:
    count = 0
    if not isinstance(data, CommentedMap) or not isinstance(data.get("companies"), CommentedSeq):
        return 0
    for company in data["companies"]:
        if not isinstance(company, CommentedMap) or not isinstance(company.get("domain"), str):
            continue
        domain_raw = company["domain"]
        if not _HOSTNAME.match(domain_raw.strip()):
            continue
        domain = normalize_domain(domain_raw)
        lines = company.get("lines")
        if not isinstance(lines, CommentedSeq):
            continue
        for line in lines:
            if not isinstance(line, CommentedMap):
                continue
            extension = _yaml_digits(line.get("extension"))
            if not isinstance(extension, str) or not _THREE_DIGITS.match(extension):
                continue
            password = line.get("password")
            if isinstance(password, str) and password and "ha1" not in line:
                ha1 = Ha1.from_password(extension, domain, password)
                new = CommentedMap([("md5", ha1.md5), ("sha256", ha1.sha256)])
                _replace_key(line, "password", "ha1", new)
                count += 1
            voicemail = line.get("voicemail")
            if isinstance(voicemail, CommentedMap) and "pin_hash" not in voicemail:
                pin = _yaml_digits(voicemail.get("pin"))
                if isinstance(pin, str) and _PIN.match(pin):
                    _replace_key(voicemail, "pin", "pin_hash", hash_pin(pin, salt_source(16)))
                    count += 1
    return count


def _replace_key(mapping: CommentedMap, old: str, new: str, value: Any) -> None:
    """Put ``new: value`` where ``old`` was, keeping the comment lines that followed it.

    A comment on the secret's own line goes (it may well repeat the secret);
    the comment lines below it belong to what follows and are kept.
    """
    position = list(mapping.keys()).index(old)
    comment = mapping.ca.items.pop(old, None)
    del mapping[old]
    mapping.insert(position, new, value)
    if comment is None or comment[2] is None:
        return
    token = comment[2]
    _, newline, rest = token.value.partition("\n")
    if not newline or not rest.strip():
        return
    token.value = "\n" + rest
    target = value if isinstance(value, CommentedMap) and value else None
    if target is not None:
        last = list(target.keys())[-1]
        target.ca.items[last] = [None, None, token, None]
    else:
        mapping.ca.items[new] = [None, None, token, None]


def _write(path: Path, yaml: YAML, data: Any) -> bool:
    """Atomic replace when the directory is writable, else in place; False on failure."""
    mode = path.stat().st_mode & 0o7777
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError:
        try:
            with path.open("w", encoding="utf-8") as out:
                yaml.dump(data, out)
        except OSError:
            return False
        return True
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.dump(data, out)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
    return True
