"""Reading org policies: parse every file once, check every cross-reference, compile CEL.

Errors (unknown rule ids with "did you mean", bad parameters, CEL syntax/type errors, bad
hardware, waivers without reason/owner/expiry, malformed dates) are ``SpecError``s at the policy
file's ``line:col`` (exit 2). Policies are cached per process by content.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from gate.errors import GateError, SourceLocation, SpecError
from gate.plan.catalog import Hardware, parse_entry
from gate.policy.cel import compile_expression
from gate.policy.models import PolicyDocument, RuleSetting, SettingsEntry
from gate.policy.policy_set import PlacedCustomRule, PlacedSetting, PolicySet, clean_message
from gate.policy.rule import Rule
from gate.policy.rules import builtin_rules
from gate.policy.sources import POLICIES_DIR, PolicyFile, files_from_dir, files_from_ref
from gate.policy.waivers import PlacedWaiver
from gate.spec.loader import validate_document
from gate.spec.yaml_source import KeyPath, SourceMap, dotted, parse_yaml
from gate.suggest import did_you_mean

if TYPE_CHECKING:
    from gate.options import StaticOptions

_DATE_LIKE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b")
_LOADED: dict[tuple[str, tuple[tuple[str, bytes], ...]], PolicySet] = {}


def load_policy_set(options: StaticOptions) -> PolicySet:
    """The policies for a run (``options`` is a ``gate.options.StaticOptions``).

    ``options.policies_ref`` set: ``policies/`` at that git ref (never the working tree).
    Else ``options.policies_dir``, else ``<repo_root>/policies`` when it exists, else built-in
    defaults only. Parsed and compiled once per process for the same file contents.
    """
    repo_root = options.repo_root
    if options.policies_ref:
        files = files_from_ref(repo_root, options.policies_ref)
        source = f"{options.policies_ref}:{POLICIES_DIR}/"
    elif options.policies_dir is not None:
        files = files_from_dir(Path(options.policies_dir))
        source = str(options.policies_dir)
    elif (repo_root / POLICIES_DIR).is_dir():
        files = files_from_dir(repo_root / POLICIES_DIR)
        source = f"{POLICIES_DIR}/"
    else:
        files = []
        source = "built-in defaults"
    return build_policy_set(files, source=source)


def build_policy_set(files: list[PolicyFile], *, source: str = "built-in defaults") -> PolicySet:
    """Parse and check policy files (cached by content)."""
    key = (source, tuple((f.shown, f.raw) for f in files))
    cached = _LOADED.get(key)
    if cached is None:
        cached = _build(files, source)
        _LOADED[key] = cached
    return cached


def _build(files: list[PolicyFile], source: str) -> PolicySet:
    rules = builtin_rules()
    entries: dict[str, list[PlacedSetting]] = {}
    custom: list[PlacedCustomRule] = []
    custom_where: dict[str, SourceLocation] = {}
    settings: list[SettingsEntry] = []
    hardware: dict[str, Hardware] = {}
    hardware_where: dict[str, SourceLocation] = {}
    waivers: list[PlacedWaiver] = []
    docs = [(f, *_parse(f)) for f in files]
    for f, doc, smap in docs:
        for i, c in enumerate(doc.custom_rules):
            where = smap.locate(("custom_rules", i, "id"))
            if c.id in custom_where:
                raise SpecError(
                    f"custom_rules[{i}].id: {c.id} is already defined at {custom_where[c.id]}",
                    hint="give each custom rule a unique id", location=where,
                )
            custom_where[c.id] = where
            program = compile_expression(c.expression, smap.locate(("custom_rules", i, "expression")),
                                         f"custom_rules[{i}].expression")
            custom.append(PlacedCustomRule(c, program, f.shown, smap.locate(("custom_rules", i))))
    known = [*rules, *custom_where]
    for f, doc, smap in docs:
        for i, setting in enumerate(doc.rules):
            where = smap.locate(("rules", i))
            rule_cls = rules.get(setting.rule)
            if rule_cls is None:
                raise _unknown_rule(f"rules[{i}].rule", setting.rule, list(rules), smap.locate(("rules", i, "rule")),
                                    custom=setting.rule in custom_where)
            _check_setting(rule_cls, setting, i, smap)
            entries.setdefault(setting.rule, []).append(PlacedSetting(setting, f.shown, where))
        settings.extend(doc.settings)
        for name, fields in doc.hardware.items():
            where = smap.locate(("hardware", name))
            if name in hardware_where:
                raise SpecError(f"hardware.{name}: already defined at {hardware_where[name]}",
                                hint="define each hardware entry in one policy file", location=where)
            try:
                hardware[name] = parse_entry(name, fields, f.shown)
            except GateError as exc:
                raise SpecError(exc.message, hint=exc.hint, location=where) from None
            hardware_where[name] = where
        for i, waiver in enumerate(doc.waivers):
            if waiver.rule not in known:
                raise _unknown_rule(f"waivers[{i}].rule", waiver.rule, known, smap.locate(("waivers", i, "rule")))
            waivers.append(PlacedWaiver(waiver, f.shown, smap.locate(("waivers", i))))
    policy_set = PolicySet(
        files=tuple(f.shown for f in files),
        entries={k: tuple(v) for k, v in entries.items()},
        custom=tuple(custom),
        settings=tuple(settings),
        hardware=hardware,
        waivers=tuple(waivers),
        source=source,
    )
    return policy_set


def _parse(f: PolicyFile) -> tuple[PolicyDocument, SourceMap]:
    try:
        doc = parse_yaml(f.raw, f.shown, what="policy")
    except SpecError as exc:
        if exc.location is not None and exc.location.line is None and "ValueError" in exc.message:
            raise _bad_date(f, exc) from None
        raise
    except ValueError as exc:
        raise _bad_date(f, SpecError(str(exc), location=SourceLocation(f.shown))) from None
    return validate_document(PolicyDocument, doc), doc.source_map


def _bad_date(f: PolicyFile, original: SpecError) -> SpecError:
    """The YAML parser fails without a position on a date-shaped but impossible date (2026-13-45)."""
    text = f.raw.decode("utf-8", errors="replace")
    for line_no, line in enumerate(text.splitlines(), start=1):
        for match in _DATE_LIKE.finditer(line):
            try:
                dt.date.fromisoformat("-".join(p.zfill(2) for p in match.group(0).split("-")))
            except ValueError:
                return SpecError(
                    f"{match.group(0)!r} is not a valid date",
                    hint="write dates as YYYY-MM-DD (e.g. 2027-03-31)",
                    location=SourceLocation(f.shown, line_no, match.start() + 1),
                )
    return original


def _unknown_rule(label: str, rule_id: str, known: list[str], where: SourceLocation, *, custom: bool = False) -> SpecError:
    if custom:
        return SpecError(
            f"{label}: {rule_id} is a custom rule; configure it in its `custom_rules` entry",
            hint="set severity, mode and scope on the custom rule itself", location=where,
        )
    guess = did_you_mean(rule_id, known) or did_you_mean(rule_id.upper(), known)
    text = f"{label}: unknown rule {rule_id!r}"
    if guess:
        text += f"; did you mean {guess!r}?"
    return SpecError(text, hint="`gate policy rules` lists every rule id", location=where)


def _check_setting(rule_cls: type[Rule], setting: RuleSetting, index: int, smap: SourceMap) -> None:
    base: KeyPath = ("rules", index)
    if not rule_cls.waivable:
        for key, bad in (("enabled", setting.enabled is False), ("severity", setting.severity == "warn"),
                         ("mode", setting.mode == "audit"), ("enforce_after", setting.enforce_after is not None)):
            if bad:
                raise SpecError(
                    f"rules[{index}].{key}: {rule_cls.id} ({rule_cls.slug}) is mandatory; "
                    "it cannot be disabled, downgraded to warn or put in audit mode",
                    hint="remove this setting; only its parameters can be tuned",
                    location=smap.locate((*base, key)),
                )
    defaults = rule_cls.params().model_dump()
    allowed = list(defaults)
    for name in setting.params:
        if name not in defaults:
            guess = did_you_mean(name, allowed)
            raise SpecError(
                f"rules[{index}].params.{name}: unknown parameter of {rule_cls.id}"
                + (f"; did you mean {guess!r}?" if guess else ""),
                hint=f"parameters of {rule_cls.id}: {', '.join(allowed) or 'none'}",
                location=smap.locate((*base, "params", name)),
            )
    try:
        rule_cls.params.model_validate({**defaults, **setting.params})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc: KeyPath = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        raise SpecError(
            f"rules[{index}].params" + (f".{dotted(loc)}" if loc else "") + f": {clean_message(err['msg'])}",
            hint=f"see `gate explain {rule_cls.id}` and `gate policy rules` for the parameters",
            location=smap.locate((*base, "params", *loc)),
        ) from None


