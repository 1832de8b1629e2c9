"""The ``hub:`` model source for real: ``snapshot_download`` against a local fake Hub.

``tests/fake_hub.py`` serves tiny Llama repositories at fixed commits from 127.0.0.1. The
``hub_cache`` fixture points the already imported ``huggingface_hub`` at it (its endpoint, offline
flag and cache paths are module constants read at import, so they are patched, and checked);
``test_hf_endpoint_in_a_fresh_process`` covers the documented ``HF_ENDPOINT`` variable itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.errors import BackendError, InputError
from gate.quantize import prepare_baseline, produce_artifact
from gate.quantize.sources import directory_identity
from gate.spec.loader import LoadedSpec, load_spec
from tests.conftest import REPO_ROOT
from tests.fake_hub import FakeHub
from tests.quantize.helpers import make_repo

REPO = "org/tiny"
COMMIT = "3f0c1d2e4b5a69788796a5b4c3d2e1f00f1e2d3c"
OTHER = "deadbeef" * 5
HINT = ("the runner needs Hub access (HF_ENDPOINT names a mirror, HF_TOKEN a token for private repos), "
        "or pre-fetch the snapshot and use `model.path`")


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub().start()
    yield hub
    hub.stop()


@pytest.fixture
def hub_cache(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``huggingface_hub`` online, talking to ``fake_hub``, caching under ``tmp_path``; the hub cache."""
    from huggingface_hub import HfApi, constants, hf_hub_url

    home = tmp_path / "hf-home"
    cache = home / "hub"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    # conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported, and the library reads the
    # endpoint and cache paths once, at import: patch the constants it consults at call time.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", fake_hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake_hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))
    # Never let a library change send these tests to the real Hub.
    assert not constants.is_offline_mode()
    assert hf_hub_url(REPO, "config.json", revision=COMMIT) == f"{fake_hub.url}/{REPO}/resolve/{COMMIT}/config.json"
    assert HfApi().endpoint == fake_hub.url
    return cache


def hub_spec(root: Path, model_dir: Path, *, repo: str = REPO, revision: str = COMMIT, extra: str = "") -> LoadedSpec:
    """A spec whose model is ``hub: repo`` at ``revision`` (lines 5 and 6 of spec.yaml)."""
    make_repo(root, model_dir)
    spec = root / "spec.yaml"
    spec.write_text(spec.read_text().replace("  path: model\n", f"  hub: {repo}\n  revision: {revision}\n{extra}"))
    return load_spec(spec)


def files_under(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() or p.is_symlink())


def test_hub_source_downloads_the_pinned_commit(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub,
                                                hub_cache: Path) -> None:
    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir, extra={"README.md": b"# tiny\n", ".gitattributes": b"*.bin lfs\n"})
    fake_hub.add_repo(REPO, OTHER, {"config.json": b"{}"})  # another commit of the same repo: never fetched
    loaded = hub_spec(tmp_path, tiny_llama_dir)

    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")

    local = sorted(p.name for p in tiny_llama_dir.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(local)
    assert (baseline.source_kind, baseline.source) == ("hub", f"{REPO}@{COMMIT}")
    assert baseline.path == hub_cache / "models--org--tiny" / "snapshots" / COMMIT
    assert sorted(p.name for p in baseline.path.iterdir()) == local  # README.md and .gitattributes not fetched
    for name in local:
        assert (baseline.path / name).read_bytes() == (tiny_llama_dir / name).read_bytes()
    # Same bytes as the local directory, same identity: the baseline caches are shared.
    assert baseline.identity == directory_identity(tiny_llama_dir)
    assert not (tmp_path / "cache").exists()

    seen = fake_hub.seen()
    assert seen[0] == ("GET", f"/api/models/{REPO}/tree/{COMMIT}")
    assert sorted(seen[1:]) == sorted(
        [("HEAD", f"/{REPO}/resolve/{COMMIT}/{name}") for name in local]
        + [("GET", f"/{REPO}/resolve/{COMMIT}/{name}") for name in local]
    )
    assert all(COMMIT in path and "main" not in path for _, path in seen)


def test_a_second_call_downloads_nothing(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub,
                                         hub_cache: Path) -> None:
    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    loaded = hub_spec(tmp_path, tiny_llama_dir)
    first = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    count = len(fake_hub.seen())

    again = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert again == first
    # At a commit, huggingface_hub reads the tree listing it cached (trees/<commit>.json) and finds
    # every file's snapshot link: not one request.
    assert len(fake_hub.seen()) == count
    assert (hub_cache / "models--org--tiny" / "trees" / f"{COMMIT}.json").is_file()

    fake_hub.stop()  # a warm cache needs no Hub at all
    assert prepare_baseline(loaded, tmp_path, tmp_path / "cache") == first


def test_unknown_repository_names_model_hub(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub,
                                            hub_cache: Path) -> None:
    loaded = hub_spec(tmp_path, tiny_llama_dir, repo="org/missing")
    with pytest.raises(InputError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert str(info.value) == (
        f"{loaded.shown_path}:5:3: model.hub: org/missing is not on the Hub at {fake_hub.url} "
        "(or is private and this runner has no access)\n"
        "  Hint: check the repository id (org/name); a private repository needs a token with access (HF_TOKEN)"
    )
    assert info.value.exit_code == 2
    assert fake_hub.seen() == [("GET", f"/api/models/org/missing/tree/{COMMIT}")]
    assert not (hub_cache / "models--org--missing" / "snapshots").exists()


def test_unknown_commit_names_model_revision(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub,
                                             hub_cache: Path) -> None:
    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    loaded = hub_spec(tmp_path, tiny_llama_dir, revision=OTHER)
    with pytest.raises(InputError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert str(info.value) == (
        f"{loaded.shown_path}:6:3: model.revision: {OTHER} is not a commit of {REPO}\n"
        "  Hint: pin an existing commit: the full 40-hex sha from the repository's history"
    )
    assert fake_hub.seen() == [("GET", f"/api/models/{REPO}/tree/{OTHER}")]
    assert not (hub_cache / "models--org--tiny" / "snapshots").exists()


def test_gated_repository_and_invalid_id_are_bad_input(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub,
                                                       hub_cache: Path) -> None:
    fake_hub.add_directory("org/gated", COMMIT, tiny_llama_dir)
    fake_hub.gated.add("org/gated")
    loaded = hub_spec(tmp_path, tiny_llama_dir, repo="org/gated")
    with pytest.raises(InputError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert str(info.value) == (
        f"{loaded.shown_path}:5:3: model.hub: org/gated is gated and this runner has no access to it\n"
        "  Hint: accept the repository's conditions on the Hub and give the runner a token with access (HF_TOKEN)"
    )
    assert fake_hub.seen() == [("GET", f"/api/models/org/gated/tree/{COMMIT}")]

    loaded = hub_spec(tmp_path, tiny_llama_dir, repo="org/bad..name")
    with pytest.raises(InputError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert str(info.value) == (
        f"{loaded.shown_path}:5:3: model.hub: 'org/bad..name' is not a valid Hub repository id "
        "(Cannot have -- or .. in repo_id: 'org/bad..name'.)\n  Hint: use org/name"
    )
    assert len(fake_hub.seen()) == 1  # refused before any request


@pytest.mark.parametrize("revision", ["main", "v1.0", COMMIT.upper(), COMMIT[:12]])
def test_a_moving_or_short_revision_is_never_requested(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub,
                                                       hub_cache: Path, revision: str) -> None:
    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    loaded = hub_spec(tmp_path, tiny_llama_dir, revision=revision)
    with pytest.raises(InputError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert str(info.value) == (
        f"{loaded.shown_path}:6:3: model.revision: {revision!r} is not a 40-hex commit\n"
        "  Hint: pin the full commit sha of the hub repository (lowercase hex), never a branch or tag"
    )
    assert fake_hub.seen() == []


def test_pickle_and_code_are_never_downloaded(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub,
                                              hub_cache: Path) -> None:
    from tests.weights.payloads import stack_global

    canary = tmp_path / "canary"
    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir, extra={
        "pytorch_model.bin": stack_global(f"touch {canary}"), "modeling_tiny.py": b"import os\n", "optimizer.pt": b"x",
    })
    baseline = prepare_baseline(hub_spec(tmp_path, tiny_llama_dir), tmp_path, tmp_path / "cache")
    assert files_under(baseline.path) == sorted(p.name for p in tiny_llama_dir.iterdir())
    requested = {path.rsplit("/", 1)[-1] for _, path in fake_hub.seen()}
    assert not requested & {"pytorch_model.bin", "modeling_tiny.py", "optimizer.pt"}
    assert not canary.exists()


def test_a_pickle_only_repository_is_refused(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub,
                                             hub_cache: Path) -> None:
    from tests.weights.payloads import stack_global

    canary = tmp_path / "canary"
    files = {p.name: p.read_bytes() for p in tiny_llama_dir.iterdir() if p.suffix != ".safetensors"}
    fake_hub.add_repo("org/pickled", COMMIT, files | {"pytorch_model.bin": stack_global(f"touch {canary}")})
    loaded = hub_spec(tmp_path, tiny_llama_dir, repo="org/pickled")
    with pytest.raises(InputError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert str(info.value) == (
        f"{loaded.shown_path}:5:3: model.hub: org/pickled@{COMMIT} has no *.safetensors weights\n"
        "  Hint: convert the weights to safetensors; pickle checkpoints (.bin/.pt) are never downloaded or loaded"
    )
    assert all(not path.endswith("pytorch_model.bin") for _, path in fake_hub.seen())
    snapshot = hub_cache / "models--org--pickled" / "snapshots" / COMMIT
    assert "pytorch_model.bin" not in files_under(snapshot)
    assert not list(hub_cache.rglob("*.bin")) and not canary.exists()


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """huggingface_hub's retry sleeps (1+2+4+8+8 s for a refused connection), recorded, not slept."""
    from huggingface_hub.utils import _http

    slept: list[float] = []
    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=slept.append))
    return slept


def test_unreachable_hub_is_a_blocking_error_and_writes_nothing(tmp_path: Path, tiny_llama_dir: Path,
                                                                fake_hub: FakeHub, hub_cache: Path,
                                                                no_backoff: list[float]) -> None:
    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    url = fake_hub.url
    fake_hub.stop()
    loaded = hub_spec(tmp_path, tiny_llama_dir)
    with pytest.raises(BackendError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    error = info.value
    assert error.exit_code == 1
    assert str(error.location) == f"{loaded.shown_path}:5:3"
    assert error.message.startswith(f"cannot download {REPO}@{COMMIT}: the Hub at {url} did not answer (ConnectError: ")
    assert error.message.endswith(")") and "\n" not in error.message
    assert error.hint == HINT
    assert no_backoff  # the library retried (without sleeping here) before giving up
    assert fake_hub.seen() == []
    assert not hub_cache.exists()  # not even the cache directory: nothing half-written


def test_outage_mid_snapshot_leaves_no_partial_file_and_resumes(tmp_path: Path, tiny_llama_dir: Path,
                                                                fake_hub: FakeHub, hub_cache: Path,
                                                                no_backoff: list[float],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    fake_hub.fail_downloads.add("model.safetensors")
    loaded = hub_spec(tmp_path, tiny_llama_dir)
    with pytest.raises(BackendError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert info.value.message == (
        f"cannot download {REPO}@{COMMIT}: HfHubHTTPError: Server error '500 Internal Server Error' for url "
        f"'{fake_hub.url}/{REPO}/resolve/{COMMIT}/model.safetensors'"
    )
    snapshot = hub_cache / "models--org--tiny" / "snapshots" / COMMIT
    assert "model.safetensors" not in files_under(snapshot)
    assert not [f for f in files_under(hub_cache) if f.endswith(".incomplete")]

    # Without the Hub, the partial snapshot is never taken for a baseline: huggingface_hub knows from
    # the cached tree listing that model.safetensors is missing and asks the Hub for it.
    fake_hub.fail_downloads.clear()
    url = fake_hub.url
    fake_hub.stop()
    with pytest.raises(BackendError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert info.value.message.startswith(f"cannot download {REPO}@{COMMIT}: the Hub at {url} did not answer (ConnectError: ")
    assert "model.safetensors" not in files_under(snapshot)

    # Back online (on another port): only the missing file is fetched.
    from huggingface_hub import constants

    hub = FakeHub(repos=fake_hub.repos).start()
    try:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
        assert hub.seen() == [
            ("HEAD", f"/{REPO}/resolve/{COMMIT}/model.safetensors"),
            ("GET", f"/{REPO}/resolve/{COMMIT}/model.safetensors"),
        ]
    finally:
        hub.stop()
    assert baseline.identity == directory_identity(tiny_llama_dir)


def test_weights_stage_scans_and_locks_the_downloaded_snapshot(tmp_path: Path, tiny_llama_dir: Path,
                                                               fake_hub: FakeHub, hub_cache: Path) -> None:
    from gate.weights import scan_spec_weights, write_lockfile
    from gate.weights.interface import FileFormat, FileVerdict, LockState
    from gate.weights.lockfile import sha256_file

    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    loaded = hub_spec(tmp_path, tiny_llama_dir)
    before = scan_spec_weights(loaded, tmp_path)
    assert before is not None and (before.fetched, before.files) == (False, [])

    snapshot = prepare_baseline(loaded, tmp_path, tmp_path / "cache").path
    assert all((snapshot / name).is_symlink() for name in os.listdir(snapshot))  # links into ../../blobs
    write_lockfile(snapshot, tmp_path / "hub.lock.json", revision=COMMIT)
    loaded = hub_spec(tmp_path, tiny_llama_dir, extra="  lockfile: hub.lock.json\n")
    scan = scan_spec_weights(loaded, tmp_path)
    assert scan is not None and scan.fetched and scan.location == str(snapshot)
    assert scan.lock.state is LockState.ok and scan.lock.revision == COMMIT
    assert scan.confinement == []
    assert sorted(f.path.rsplit("/", 1)[-1] for f in scan.files) == sorted(p.name for p in tiny_llama_dir.iterdir())
    verdicts = {f.path.rsplit("/", 1)[-1]: (f.format, f.verdict) for f in scan.files}
    assert verdicts["model.safetensors"] == (FileFormat.safetensors, FileVerdict.ok)
    assert {v for _, v in verdicts.values()} <= {FileVerdict.ok, FileVerdict.other}
    assert prepare_baseline(loaded, tmp_path, tmp_path / "cache").identity == sha256_file(tmp_path / "hub.lock.json")

    # A snapshot link into another repository's cache entry is outside the baseline.
    other = hub_cache / "models--org--other" / "blobs" / "abc"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    (snapshot / "extra.json").symlink_to(other)
    scan = scan_spec_weights(loaded, tmp_path)
    assert scan is not None
    assert [(v.key, v.path) for v in scan.confinement] == [("model.hub", f"{snapshot}/extra.json")]


def test_rtn_artifact_from_a_hub_baseline(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub,
                                          hub_cache: Path) -> None:
    from gate.quantize.artifact import PROVENANCE

    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    loaded = hub_spec(tmp_path, tiny_llama_dir)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert (artifact.method, artifact.bits, artifact.group_size, artifact.cache_hit) == ("rtn", 4, 32, False)
    assert artifact.baseline_identity == baseline.identity
    provenance = json.loads((artifact.path / PROVENANCE).read_text())
    assert provenance["baseline"] == {"source_kind": "hub", "source": f"{REPO}@{COMMIT}", "identity": baseline.identity}
    card = (artifact.path / "README.md").read_text()
    assert f'base_model: "{REPO}"' in card and f"from `{REPO}@{COMMIT}` (hub;" in card
    assert (artifact.path / "tokenizer.json").is_file()


def test_hf_endpoint_in_a_fresh_process(tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub) -> None:
    """No patching: HF_ENDPOINT / HF_HOME set before the library loads, as on a runner."""
    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    hub_spec(tmp_path, tiny_llama_dir)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_")) and k not in ("TRANSFORMERS_OFFLINE", "XDG_CACHE_HOME")}
    env |= {"HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": str(REPO_ROOT)}
    script = (
        "import json, sys\nfrom pathlib import Path\nfrom gate.quantize import prepare_baseline\n"
        "from gate.spec.loader import load_spec\nroot = Path(sys.argv[1])\n"
        "b = prepare_baseline(load_spec(root / 'spec.yaml'), root, root / 'cache')\n"
        "print(json.dumps({'path': str(b.path), 'source': b.source, 'kind': b.source_kind}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"path": str(tmp_path / "hf-home" / "hub" / "models--org--tiny" / "snapshots" / COMMIT),
                   "source": f"{REPO}@{COMMIT}", "kind": "hub"}
    assert ("GET", f"/api/models/{REPO}/tree/{COMMIT}") in fake_hub.seen()


def test_offline_mode_uses_a_warm_cache_and_names_the_variable_when_cold(
    tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HF_HUB_OFFLINE=1 set by the user: cache only."""
    from huggingface_hub import constants

    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    loaded = hub_spec(tmp_path, tiny_llama_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BackendError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert str(info.value) == (
        f"{loaded.shown_path}:5:3: cannot download {REPO}@{COMMIT}: HF_HUB_OFFLINE is set and the Hugging Face "
        f"cache ({hub_cache}) has no complete snapshot of it\n"
        "  Hint: export HF_HUB_OFFLINE=0 on a runner with Hub access, or pre-fetch the snapshot into that cache "
        f"(`hf download {REPO} --revision {COMMIT}`)"
    )
    assert fake_hub.seen() == []

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    first = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    count = len(fake_hub.seen())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert prepare_baseline(loaded, tmp_path, tmp_path / "cache") == first  # a pre-fetched runner works offline
    assert len(fake_hub.seen()) == count


def test_the_gates_own_offline_default_does_not_stop_a_pinned_model_download(
    tmp_path: Path, tiny_llama_dir: Path, fake_hub: FakeHub, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gate run` sets the offline variables the user left unset (so lm-eval never fetches task
    data), and huggingface_hub may be imported after that: the spec's pinned snapshot must still
    download, and offline mode is back on afterwards."""
    from huggingface_hub import constants

    import gate.runtime as runtime

    monkeypatch.setattr(runtime, "_defaulted", set())
    for name in runtime.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    runtime.set_offline_defaults()
    assert runtime._defaulted == set(runtime.OFFLINE_VARIABLES) and os.environ["HF_HUB_OFFLINE"] == "1"
    assert runtime.user_chose_hub_offline() is False
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as if imported after the defaults
    fake_hub.add_directory(REPO, COMMIT, tiny_llama_dir)
    baseline = prepare_baseline(hub_spec(tmp_path, tiny_llama_dir), tmp_path, tmp_path / "cache")
    assert baseline.source_kind == "hub" and (baseline.path / "model.safetensors").is_file()
    assert ("GET", f"/api/models/{REPO}/tree/{COMMIT}") in fake_hub.seen()
    assert constants.HF_HUB_OFFLINE is True
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")  # ...but not the user's own choice
    monkeypatch.setattr(runtime, "_defaulted", {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"})
    assert runtime.user_chose_hub_offline() is True


@pytest.mark.parametrize("env", [
    {"HF_HUB_CACHE": "/srv/hf/hub", "HF_HOME": "/ignored"},
    {"HUGGINGFACE_HUB_CACHE": "/legacy/hub"},
    {"HF_HOME": "~/hf-home"},
    {"HF_HOME": "$CACHE_ROOT/hf", "CACHE_ROOT": "/mnt/cache"},
    {"XDG_CACHE_HOME": "/xdg"},
    {},
], ids=["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "HF_HOME-vars", "XDG_CACHE_HOME", "default"])
def test_weights_stage_and_huggingface_hub_agree_on_the_cache(tmp_path: Path, env: dict[str, str]) -> None:
    """The weight stage looks for hub snapshots where huggingface_hub itself would put them."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("HF_", "HUGGINGFACE_")) and k not in ("XDG_CACHE_HOME", "CACHE_ROOT")}
    script = ("from huggingface_hub import constants\nfrom gate.weights.scan import hub_cache_dir\n"
              "print(constants.HF_HUB_CACHE)\nprint(hub_cache_dir())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
                          env=base | {"HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)} | env)
    library, gate = done.stdout.split()
    assert gate == library
    assert Path(library).is_absolute()
