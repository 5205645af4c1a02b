"""Settings an application declares for itself: one environment variable each, typed,
checked when the application starts, and named in any error the way the kit's own are.

    TOP_N = taskpipes.Setting("MYAPP_TOP_N", parse=int, default=100, check=positive)
    application = taskpipes.Application(settings=(TOP_N,), ...)
    ...
    TOP_N.get()  # 100, or the variable's value

The text comes from `taskpipes.declare.settings.variable` (the kit's one reader of the
environment, or the values a host handed to `taskpipes.configure`). `taskpipes.start()`
and every `taskpipes` command check every setting the application lists, so a bad value
stops the process at start with one line naming the variable, not a stage at first use.
A secret setting never shows its value: not in repr, not in an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, cast

from taskpipes.declare.settings import ConfigError, variable

T = TypeVar("T")
# What a parse failure says the value must be, for the parsers Python gives.
KIND_OF = {int: "a whole number", float: "a number", bool: "true or false"}
# bool("false") is True: a flag is parsed from these words instead.
FLAG_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


# The default of a setting without one: unset, it stops the start.
REQUIRED: Any = _Required()
# The parser of a setting without one: its text as it is.
TEXT: Any = str


def positive(value: float) -> str | None:
    """A check: None for a value above 0, else what the value must be."""
    return None if value > 0 else "positive"


def parse_flag(text: str) -> bool:
    try:
        return FLAG_WORDS[text.strip().lower()]
    except KeyError:
        raise ValueError(text) from None


class Setting(Generic[T]):
    """One environment variable of the application, parsed by `parse` (int, float, str,
    bool or any function of the text that raises ValueError), defaulting to `default`
    when unset or empty (without a default, the variable must be set).

    `check(value)` returns None for a good value, else what the value must be ("positive"):
    the error reads "NAME must be positive, got '0'". `must_be` names what a value that
    `parse` refuses must be, when the parser is not one of Python's numbers. `help` says
    what the setting is for (the docs and `repr` show it).
    """

    def __init__(
        self,
        name: str,
        parse: Callable[[str], T] = TEXT,
        default: T = REQUIRED,
        *,
        secret: bool = False,
        check: Callable[[T], str | None] | None = None,
        must_be: str | None = None,
        help: str = "",
    ) -> None:
        self.name = name
        self.parse = cast(Callable[[str], T], parse_flag) if parse is bool else parse
        self.default = default
        self.secret = secret
        self.check = check
        self.must_be = must_be or KIND_OF.get(parse, "a valid value")  # type: ignore[call-overload]
        self.help = help

    def __repr__(self) -> str:
        default = "***" if self.secret and self.default is not None else repr(self.default)
        return (
            f"Setting({self.name!r}, default={default}, secret={self.secret}, help={self.help!r})"
        )

    def get(self) -> T:
        """The value now: the variable's, parsed and checked, or the default."""
        return self.load(variable(self.name))

    def load(self, text: str | None) -> T:
        """The value of this text of the variable (None or "" is unset), or ConfigError."""
        if text is None or text == "":
            if self.default is REQUIRED:
                raise ConfigError(f"{self.name} must be set")
            return self.default
        try:
            value = self.parse(text)
        except (ValueError, TypeError, ArithmeticError):
            raise self._refused(self.must_be, text) from None
        problem = self.check(value) if self.check else None
        if problem is not None:
            raise self._refused(problem, text)
        return value

    def _refused(self, must_be: str, text: str) -> ConfigError:
        shown = " (the value is secret: not shown)" if self.secret else f", got {text!r}"
        return ConfigError(f"{self.name} must be {must_be}{shown}")


def check_all(settings: Iterable[Setting[Any]]) -> None:
    """Read every setting once, so that a bad one stops the start, named; two settings of
    one variable are refused (the second would silently read the first's value)."""
    seen: set[str] = set()
    for setting in settings:
        if setting.name in seen:
            raise ConfigError(f"{setting.name} is declared twice in the application's settings")
        seen.add(setting.name)
        setting.get()
