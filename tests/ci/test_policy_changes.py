"""A policy change selects only the specs it can affect (real git repositories, real policy files).

Every scenario also checks the claim behind the narrowing: for each spec left out, the engine
resolves every rule, custom rule, waiver, setting and catalog entry identically under the policies
at the merge base and at HEAD (``assert_unaffected``).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from gate.ci.changes import select_specs
from gate.ci.policy_changes import PolicySide, analyse
from gate.plan.catalog import load_catalog
from gate.policy.engine import run_checks
from gate.policy.facts import Facts
from gate.policy.rules import builtin_rules
from gate.spec.loader import load_spec
from tests.ci.test_changes import commit, git, spec_text, write

SPECS = {
    # path: (name, owner, tier, hardware)
    "models/crit-a.yaml": ("crit-a", "team-a", "critical", "nvidia-l4"),
    "models/std-b.yaml": ("std-b", "team-b", "standard", "cpu-x86-avx2"),
    "models/std-c.yaml": ("std-c", "team-a", "standard", "edge-gpu"),
    "models/int-d.yaml": ("int-d", "team-a", "internal", "edge-cpu"),
}
ALL = sorted(SPECS)

ORG = """\
# The org policy.
apiVersion: quant-gate/v1
kind: Policy
metadata: {name: org, description: baseline}
rules:
  - rule: QG301
    params: {min_samples: 64}
  - rule: QG301
    scope: {owners: [team-b]}
    params: {min_samples: 256}
  - rule: QG304
    scope: {tiers: [critical]}
    params: {max_age_days: 90}
hardware:
  edge-gpu: {kind: gpu, vendor: nvidia, memory_gb: 16, compute_capability: "8.9", fast_formats: [awq-gemm]}
"""

WAIVERS = """\
apiVersion: quant-gate/v1
kind: Policy
metadata: {name: waivers}
waivers:
  - {rule: QG205, models: [std-b], reason: kernels land in Q3, owner: team-b, expires: 2030-01-01}
"""

POLICY_TEST = """\
apiVersion: quant-gate/v1
kind: PolicyTest
base: models/crit-a.yaml
cases:
  - name: passes
    expect: []
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: four specs (tiers critical/standard/standard/internal), org and waiver policies, a policy test."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    for path, (name, owner, tier, hardware) in SPECS.items():
        write(repo, path, spec_text(name, hardware, owner=owner, tier=tier))
    write(repo, "policies/org.yaml", ORG)
    write(repo, "policies/waivers.yaml", WAIVERS)
    write(repo, "policies/tests/org_test.yaml", POLICY_TEST)
    write(repo, "policies/README.md", "policies\n")
    commit(repo, "base")
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def edit(repo: Path, rel: str, old: str, new: str) -> None:
    text = (repo / rel).read_text(encoding="utf-8")
    assert old in text, old
    write(repo, rel, text.replace(old, new))


def selected(repo: Path) -> dict[str, tuple[str, ...]]:
    return {s.path: s.reasons for s in select_specs(repo, "main").selected}


# -- the soundness check ----------------------------------------------------------------------
def outcome(side: PolicySide, repo: Path, path: str) -> Any:
    """Everything the policies decide for one spec, without source positions."""
    loaded = load_spec(repo / path)
    ps = side.policy_set
    meta = loaded.spec.metadata
    catalog = ps.extend_catalog(load_catalog())
    resolved = {}
    for rule_id in builtin_rules():
        r = ps.resolve(rule_id, meta)
        resolved[rule_id] = (r.enabled, r.severity, r.mode, r.enforce_after, r.params.model_dump(), r.policy,
                             r.conflict is None)
    facts = Facts(loaded=loaded, catalog=catalog, today=dt.date(2026, 6, 1), repo_root=repo)
    evaluation = run_checks(facts, ps)
    findings = sorted((f.rule_id, f.severity, f.mode, f.waived, f.policy) for f in evaluation.findings)
    assert loaded.spec.constraint is not None
    hardware = catalog.find(loaded.spec.constraint.target.hardware)
    return resolved, findings, evaluation.checks, ps.settings_for(loaded), hardware


def assert_unaffected(repo: Path, chosen: dict[str, tuple[str, ...]]) -> None:
    """Specs left out resolve identically under both sides; at least one selected spec does not."""
    paths = [p for line in git(repo, "diff", "--name-only", "main...HEAD").splitlines() for p in [line]]
    change = analyse(repo, "main", paths)
    assert change.base is not None and change.head is not None
    for path in ALL:
        same = outcome(change.base, repo, path) == outcome(change.head, repo, path)
        assert same is (path not in chosen), path


# -- scoped entries -----------------------------------------------------------------------------
def test_rule_scoped_to_critical_selects_only_critical_specs(repo: Path) -> None:
    edit(repo, "policies/org.yaml", "hardware:", "  - {rule: QG205, severity: warn, scope: {tiers: [critical]}}\nhardware:")
    commit(repo)
    chosen = selected(repo)
    assert chosen == {
        "models/crit-a.yaml": ("policy changed: policies/org.yaml (rules entry for QG205 now applies to tiers critical)",),
    }
    assert_unaffected(repo, chosen)


def test_scope_moved_from_critical_to_standard_selects_both_tiers(repo: Path) -> None:
    edit(repo, "policies/org.yaml", "scope: {tiers: [critical]}", "scope: {tiers: [standard]}")
    commit(repo)
    chosen = selected(repo)
    now = ("policy changed: policies/org.yaml (rules entry for QG304 now applies to tiers standard)",)
    assert chosen == {
        "models/crit-a.yaml": ("policy changed: policies/org.yaml (rules entry for QG304 no longer applies to tiers critical)",),
        "models/std-b.yaml": now,
        "models/std-c.yaml": now,
    }
    assert_unaffected(repo, chosen)


def test_parameter_edit_of_an_owner_scoped_entry_selects_that_owners_specs(repo: Path) -> None:
    edit(repo, "policies/org.yaml", "min_samples: 256", "min_samples: 200")
    commit(repo)
    chosen = selected(repo)
    assert chosen == {
        "models/std-b.yaml": ("policy changed: policies/org.yaml (rules entry for QG301 changed for owners team-b)",),
    }
    assert_unaffected(repo, chosen)


def test_settings_entry_scoped_by_name_glob(repo: Path) -> None:
    edit(repo, "policies/org.yaml", "hardware:", "settings:\n  - {scope: {names: [std-*]}, inconclusive: allow}\nhardware:")
    commit(repo)
    chosen = selected(repo)
    why = ("policy changed: policies/org.yaml (settings entry now applies to names std-*)",)
    assert chosen == {"models/std-b.yaml": why, "models/std-c.yaml": why}
    assert_unaffected(repo, chosen)


# -- waivers ------------------------------------------------------------------------------------
def test_waiver_for_one_model_selects_only_that_model(repo: Path) -> None:
    write(repo, "policies/waivers.yaml", WAIVERS
          + "  - {rule: QG304, models: [crit-a], reason: refresh pending, owner: team-a, expires: 2030-01-01}\n")
    commit(repo)
    chosen = selected(repo)
    assert chosen == {
        "models/crit-a.yaml": ("policy changed: policies/waivers.yaml (waiver of QG304 now applies to models crit-a)",),
    }
    assert_unaffected(repo, chosen)


def test_renewed_waiver_selects_its_model(repo: Path) -> None:
    edit(repo, "policies/waivers.yaml", "expires: 2030-01-01", "expires: 2026-01-01")
    commit(repo)
    chosen = selected(repo)
    assert chosen == {
        "models/std-b.yaml": ("policy changed: policies/waivers.yaml (waiver of QG205 changed for models std-b)",),
    }
    assert_unaffected(repo, chosen)


# -- hardware -----------------------------------------------------------------------------------
def test_hardware_change_selects_only_specs_on_that_target(repo: Path) -> None:
    edit(repo, "policies/org.yaml", "memory_gb: 16", "memory_gb: 12")
    commit(repo)
    chosen = selected(repo)
    assert chosen == {"models/std-c.yaml": ("policy changed: policies/org.yaml (hardware entry edge-gpu changed)",)}
    assert_unaffected(repo, chosen)


def test_hardware_addition_selects_only_specs_on_that_target(repo: Path) -> None:
    edit(repo, "policies/org.yaml", "hardware:\n", "hardware:\n  edge-cpu: {kind: cpu, vendor: arm, memory_gb: 8, isa: arm64-neon}\n")
    commit(repo)
    chosen = selected(repo)
    assert chosen == {"models/int-d.yaml": ("policy changed: policies/org.yaml (hardware entry edge-cpu added)",)}
    assert_unaffected(repo, chosen)


def test_hardware_entry_moved_to_another_file_unchanged_selects_nothing(repo: Path) -> None:
    line = '  edge-gpu: {kind: gpu, vendor: nvidia, memory_gb: 16, compute_capability: "8.9", fast_formats: [awq-gemm]}\n'
    edit(repo, "policies/org.yaml", "hardware:\n" + line, "")
    write(repo, "policies/waivers.yaml", WAIVERS + "hardware:\n" + line.replace("16", "16.0"))
    commit(repo)
    changes = select_specs(repo, "main")
    assert changes.selected == ()
    assert changes.notes == (
        "policy changed, no spec's applicable entries changed: policies/org.yaml",
        "policy changed, no spec's applicable entries changed: policies/waivers.yaml",
    )
    assert_unaffected(repo, {})


# -- edits that change nothing --------------------------------------------------------------------
def test_metadata_and_comment_only_edit_selects_nothing(repo: Path) -> None:
    text = ORG.replace("description: baseline", "description: the reviewed baseline v2")
    text = "# Owned by the platform team.\n\n" + text.replace("rules:\n", "rules:\n  # sample counts\n")
    write(repo, "policies/org.yaml", text)
    commit(repo)
    changes = select_specs(repo, "main")
    assert changes.selected == ()
    assert changes.notes == ("policy changed, no spec's applicable entries changed: policies/org.yaml",)
    assert_unaffected(repo, {})


def test_policy_test_fixture_and_readme_change_select_nothing(repo: Path) -> None:
    write(repo, "policies/tests/org_test.yaml", POLICY_TEST.replace("passes", "still passes"))
    write(repo, "policies/README.md", "policies, documented\n")
    commit(repo)
    changes = select_specs(repo, "main")
    assert changes.selected == ()
    assert changes.notes == (
        "not read by the policy loader, affects no spec: policies/README.md",
        "policy test changed, affects no spec: policies/tests/org_test.yaml",
    )
    from gate.ci.matrix import build_fan_out, load_fan_out

    plan = build_fan_out(changes, changes.selected, repo, load_catalog())
    assert plan.text().splitlines() == [
        "note: not read by the policy loader, affects no spec: policies/README.md",
        "note: policy test changed, affects no spec: policies/tests/org_test.yaml",
        "0 spec(s) to run (changed since main)",
    ]
    saved = repo / "plan.json"
    saved.write_text(plan.render(), encoding="utf-8")
    assert load_fan_out(saved).notes == changes.notes


# -- new, deleted and renamed files -------------------------------------------------------------
def test_new_policy_file_with_an_unscoped_entry_selects_every_spec(repo: Path) -> None:
    write(repo, "policies/extra.yaml", """\
apiVersion: quant-gate/v1
kind: Policy
metadata: {name: extra}
custom_rules:
  - {id: ORG900, expression: 'spec.metadata.owner.startsWith("team-")', message: owner must be a team}
""")
    commit(repo)
    why = ("policy changed: policies/extra.yaml (custom rule ORG900 now applies to all specs)",)
    chosen = selected(repo)
    assert chosen == dict.fromkeys(ALL, why)
    assert_unaffected(repo, chosen)


def test_a_spec_names_at_most_three_changed_entries_per_file(repo: Path) -> None:
    write(repo, "policies/extra.yaml", """\
apiVersion: quant-gate/v1
kind: Policy
metadata: {name: extra}
rules:
  - {rule: QG201, params: {min_bits_without_qat: 4}}
  - {rule: QG303, severity: warn}
  - {rule: QG302, severity: warn}
  - {rule: QG501, severity: warn}
""")
    commit(repo)
    assert selected(repo) == dict.fromkeys(ALL, (
        "policy changed: policies/extra.yaml (rules entry for QG201 now applies to all specs)",
        "policy changed: policies/extra.yaml (rules entry for QG302 now applies to all specs)",
        "policy changed: policies/extra.yaml (2 more entries changed)",
    ))


def test_deleted_policy_file_selects_the_specs_it_applied_to(repo: Path) -> None:
    git(repo, "rm", "-q", "policies/waivers.yaml")
    commit(repo)
    chosen = selected(repo)
    assert chosen == {
        "models/std-b.yaml": ("policy changed: policies/waivers.yaml (waiver of QG205 no longer applies to models std-b)",),
    }
    assert_unaffected(repo, chosen)


def test_entry_moved_to_another_file_selects_its_specs(repo: Path) -> None:
    # QG002 and the findings' `policy` name the file, so the file is part of a rules entry.
    edit(repo, "policies/org.yaml", "  - rule: QG304\n    scope: {tiers: [critical]}\n    params: {max_age_days: 90}\n", "")
    write(repo, "policies/zz.yaml", "apiVersion: quant-gate/v1\nkind: Policy\nmetadata: {name: zz}\nrules:\n"
          "  - rule: QG304\n    scope: {tiers: [critical]}\n    params: {max_age_days: 90}\n")
    commit(repo)
    chosen = selected(repo)
    assert chosen == {"models/crit-a.yaml": (
        "policy changed: policies/zz.yaml (rules entry for QG304 now applies to tiers critical)",
        "policy changed: policies/org.yaml (rules entry for QG304 no longer applies to tiers critical)",
    )}
    assert_unaffected(repo, chosen)


# -- order ----------------------------------------------------------------------------------------
def test_reordering_entries_selects_only_the_spec_whose_resolution_depends_on_the_order(repo: Path) -> None:
    edit(repo, "policies/org.yaml",
         "  - rule: QG301\n    params: {min_samples: 64}\n  - rule: QG301\n    scope: {owners: [team-b]}\n    params: {min_samples: 256}\n",
         "  - rule: QG301\n    scope: {owners: [team-b]}\n    params: {min_samples: 256}\n  - rule: QG301\n    params: {min_samples: 64}\n")
    commit(repo)
    chosen = selected(repo)
    assert chosen == {"models/std-b.yaml": ("policy changed: policies/org.yaml (rules entries for QG301 reordered)",)}
    assert_unaffected(repo, chosen)


def test_reordering_entries_of_different_rules_selects_nothing(repo: Path) -> None:
    qg304 = "  - rule: QG304\n    scope: {tiers: [critical]}\n    params: {max_age_days: 90}\n"
    edit(repo, "policies/org.yaml", qg304, "")
    edit(repo, "policies/org.yaml", "rules:\n", "rules:\n" + qg304)
    commit(repo)
    assert selected(repo) == {}
    assert_unaffected(repo, {})


# -- fail safe: select every spec -----------------------------------------------------------------
def test_policies_that_do_not_load_at_head_select_every_spec(repo: Path) -> None:
    edit(repo, "policies/org.yaml", "rule: QG304", "rule: QG999")
    commit(repo)
    why = ("policy changed: policies/org.yaml (policies at HEAD do not load: select all)",)
    assert selected(repo) == dict.fromkeys(ALL, why)


def test_policies_that_do_not_load_at_the_merge_base_select_every_spec(repo: Path) -> None:
    git(repo, "checkout", "-q", "main")
    write(repo, "policies/waivers.yaml", WAIVERS.replace("owner: team-b, ", ""))  # a waiver needs an owner
    commit(repo, "broken waiver on main")
    git(repo, "checkout", "-q", "-b", "fix")
    write(repo, "policies/waivers.yaml", WAIVERS)
    commit(repo, "fix it")
    why = ("policy changed: policies/waivers.yaml (policies at the merge base with main do not load: select all)",)
    assert selected(repo) == dict.fromkeys(ALL, why)


def test_a_symlinked_policy_file_selects_every_spec_when_its_target_changes(repo: Path) -> None:
    if not hasattr(os, "symlink"):
        pytest.skip("no symbolic links here")
    git(repo, "checkout", "-q", "main")
    write(repo, "shared/extra.yaml", "apiVersion: quant-gate/v1\nkind: Policy\nmetadata: {name: extra}\n")
    os.symlink("../shared/extra.yaml", repo / "policies/extra.yaml")
    commit(repo, "linked policy")
    git(repo, "checkout", "-q", "-b", "link-pr")
    write(repo, "shared/extra.yaml", "apiVersion: quant-gate/v1\nkind: Policy\nmetadata: {name: extra}\n"
          "rules:\n  - {rule: QG304, scope: {tiers: [internal]}, params: {max_age_days: 30}}\n")
    commit(repo)
    why = ("policy changed: shared/extra.yaml (policies/extra.yaml is a symbolic link: select all)",)
    assert selected(repo) == dict.fromkeys(ALL, why)


def test_an_unchanged_spec_that_does_not_load_is_listed_not_selected(repo: Path) -> None:
    # It is an error whatever the policies say (QG000 before any rule runs).
    git(repo, "checkout", "-q", "main")
    write(repo, "models/std-b.yaml", "apiVersion: quant-gate/v1\nkind: ModelSpec\nmetadata: [oops\n")
    commit(repo, "break std-b")
    git(repo, "checkout", "-q", "-b", "pr2")
    edit(repo, "policies/org.yaml", "min_samples: 64", "min_samples: 32")
    commit(repo)
    changes = select_specs(repo, "main")
    why = ("policy changed: policies/org.yaml (rules entry for QG301 changed for all specs)",)
    assert {s.path: s.reasons for s in changes.selected} == dict.fromkeys(
        ["models/crit-a.yaml", "models/int-d.yaml", "models/std-c.yaml"], why)
    assert changes.unreadable == ("models/std-b.yaml",)


# -- combined with other reasons ------------------------------------------------------------------
def test_spec_edit_and_policy_change_give_both_reasons(repo: Path) -> None:
    name, owner, tier, hardware = SPECS["models/crit-a.yaml"]
    write(repo, "models/crit-a.yaml", spec_text(name, hardware, owner=owner, tier=tier)
          .replace("samples: 128", "samples: 256"))
    edit(repo, "policies/org.yaml", "max_age_days: 90", "max_age_days: 60")
    commit(repo)
    assert selected(repo) == {"models/crit-a.yaml": (
        "spec edited", "policy changed: policies/org.yaml (rules entry for QG304 changed for tiers critical)",
    )}
