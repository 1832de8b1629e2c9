"""A local stand-in for the Hugging Face Hub: just what ``snapshot_download`` at a commit needs.

The Hub is an external boundary the test machines cannot reach, so tests serve repositories from a
stdlib HTTP server bound to 127.0.0.1. It implements the endpoints the installed
``huggingface_hub`` (2.x) calls for ``snapshot_download(repo, revision=<40-hex commit>)``:

- ``GET /api/models/<org>/<name>/tree/<commit>?recursive=...`` the file listing (one page, no
  ``Link`` header), entries shaped like the Hub's: ``type``, ``path``, ``size``, ``oid`` (git blob
  sha1), and ``lfs`` (``oid`` = sha256, ``size``, ``pointerSize``) for LFS-tracked files;
- ``HEAD /<org>/<name>/resolve/<commit>/<file>`` the file metadata: ``X-Repo-Commit``, ``ETag``
  (git blob sha1, or sha256 for LFS files, which also get ``X-Linked-Etag``/``X-Linked-Size``),
  ``Content-Length``;
- ``GET`` of the same path: the bytes.

Only commits are served: a branch such as ``main`` is an unknown revision, so an unpinned request
fails instead of quietly succeeding. Errors carry the Hub's ``X-Error-Code`` (``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``), which ``huggingface_hub`` turns into
``RepositoryNotFoundError`` / ``RevisionNotFoundError`` / ``RemoteEntryNotFoundError`` /
``GatedRepoError``. Every
request is recorded as ``(method, path)``.

Point ``huggingface_hub`` at it with ``HF_ENDPOINT=<FakeHub.url>`` in a fresh process, or see
``tests/quantize/test_hub_source.py`` for patching an already imported library.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".model", ".gguf", ".ckpt", ".pkl", ".h5", ".msgpack", ".onnx")
"""Files the Hub's default ``.gitattributes`` stores in LFS."""

TELEMETRY = frozenset({"/api/agent-harnesses"})
"""Best-effort requests ``huggingface_hub`` makes at most once a process (agent detection), answered
404 here and left out of ``seen()``: they are no part of a download."""

TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<revision>[^/]+)/?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$")


@dataclass(frozen=True)
class HubFile:
    path: str
    data: bytes

    @property
    def lfs(self) -> bool:
        return self.path.endswith(LFS_SUFFIXES)

    @property
    def git_oid(self) -> str:
        """The git blob sha1, as the Hub reports for every file (for LFS files: of the pointer)."""
        content = self.pointer if self.lfs else self.data
        return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n"
        ).encode()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_oid

    def tree_entry(self) -> dict[str, object]:
        entry: dict[str, object] = {"type": "file", "oid": self.git_oid, "size": len(self.data), "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(self.pointer)}
        return entry


@dataclass
class FakeHub:
    """A running fake Hub; ``add_repo`` publishes files at a commit, ``requests`` lists what it served."""

    repos: dict[str, dict[str, dict[str, HubFile]]] = field(default_factory=dict)
    """repo id -> commit -> path -> file."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    gated: set[str] = field(default_factory=set)
    """Repo ids answered as gated for this (anonymous) caller: 401 with ``X-Error-Code: GatedRepo``."""
    fail_downloads: set[str] = field(default_factory=set)
    """Paths whose ``GET`` answers 500 (a Hub outage in the middle of a snapshot)."""
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake Hub is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_repo(self, repo_id: str, commit: str, files: dict[str, bytes]) -> None:
        self.repos.setdefault(repo_id, {})[commit] = {name: HubFile(name, data) for name, data in files.items()}

    def add_directory(self, repo_id: str, commit: str, directory: Path, *, extra: dict[str, bytes] | None = None) -> None:
        """Publish every file under ``directory`` (recursively) plus ``extra`` at ``commit``."""
        files = {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
        files.update(extra or {})
        self.add_repo(repo_id, commit, files)

    def seen(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request so far, in order, telemetry left out."""
        with self._lock:
            return [r for r in self.requests if r[1] not in TELEMETRY]

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after stop()

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                hub._serve(self, body=True)

            def do_HEAD(self) -> None:
                hub._serve(self, body=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port: later requests get ``connection refused``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    # --- request handling ----------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        with self._lock:
            self.requests.append((handler.command, path))
        if body and (match := TREE.match(path)):
            commit = self._commit(handler, match["repo"], match["revision"])
            if commit is not None:
                entries = [f.tree_entry() for f in commit.values()]
                self._send(handler, 200, json.dumps(entries).encode(), {"Content-Type": "application/json"})
            return
        if match := RESOLVE.match(path):
            commit = self._commit(handler, match["repo"], match["revision"])
            if commit is None:
                return
            file = commit.get(match["file"])
            headers = {"X-Repo-Commit": match["revision"]}
            if file is None:
                self._error(handler, 404, "EntryNotFound", "Entry not found", headers, body=body)
                return
            if body and file.path in self.fail_downloads:
                self._error(handler, 500, None, "Internal Error", headers, body=body)
                return
            headers |= {"ETag": f'"{file.etag}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            if file.lfs:
                headers |= {"X-Linked-Etag": f'"{file.sha256}"', "X-Linked-Size": str(len(file.data))}
            self._send(handler, 200, file.data, headers, body=body)
            return
        self._error(handler, 404, None, "Not Found", {}, body=body)

    def _commit(self, handler: BaseHTTPRequestHandler, repo: str, revision: str) -> dict[str, HubFile] | None:
        if repo in self.gated:
            self._error(handler, 401, "GatedRepo", "Access to model " + repo + " is restricted.", {},
                        body=handler.command != "HEAD")
            return None
        commits = self.repos.get(repo)
        if commits is None:
            self._error(handler, 404, "RepoNotFound", "Repository not found", {}, body=handler.command != "HEAD")
            return None
        files = commits.get(revision)
        if files is None:
            self._error(handler, 404, "RevisionNotFound", "Invalid rev id: " + revision, {}, body=handler.command != "HEAD")
        return files

    @staticmethod
    def _error(handler: BaseHTTPRequestHandler, status: int, code: str | None, message: str, headers: dict[str, str],
               *, body: bool) -> None:
        extra = dict(headers)
        if code is not None:
            extra["X-Error-Code"] = code
        extra["X-Error-Message"] = message
        extra["Content-Type"] = "application/json"
        FakeHub._send(handler, status, json.dumps({"error": message}).encode(), extra, body=body)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str], *, body: bool = True) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)
