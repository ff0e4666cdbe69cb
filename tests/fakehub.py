"""An in-process fake of the Hugging Face Hub (test support, imported by the push tests).

No Hub emulator is installable from the package index, so this implements the HTTP endpoints that
`HfApi.create_repo/create_branch/list_repo_files/create_commit` (LFS transfer, Xet disabled) and
`load_dataset("user/repo")` (HfFileSystem: repo info, tree, paths-info, resolve with ranges) call,
served through `huggingface_hub.set_client_factory` + an httpx MockTransport. Model repos (`add_model`,
public, private or gated) answer what `snapshot_download` asks (info, tree, resolve with ETag,
X-Repo-Commit and ranges); tests/hub_models.py serves a FakeHub over real HTTP on 127.0.0.1. Repos keep files per
branch; every request is recorded, and a request the fake does not know is recorded as unhandled
(tests assert there are none, so an unexpected call fails loudly instead of being faked).

tests/test_push_fakehub.py checks that it behaves like the Hub for the calls we make.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

TOKEN = "hf_FakeTokenForTests0123456789abcdefXYZ"
USER = "user"
LFS_PREFIX = "/__fake_lfs__/"
EXTERNAL_HOSTS = ("s3.amazonaws.com", "datasets-server.huggingface.co")


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


@dataclass
class FakeFile:
    data: bytes
    lfs: bool

    @functools.cached_property
    def oid(self) -> str:
        return git_blob_oid(self.data)

    @functools.cached_property
    def sha256(self) -> str:  # cached: a served model's weights are hundreds of MB
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    private: bool
    kind: str = "dataset"  # or "model"
    gated: bool = False  # files need a token (the Hub's gated repos: info and tree are public)
    branches: dict[str, dict[str, FakeFile]] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)


class FakeHub:
    """State plus one `handle(request)` entry point for an httpx MockTransport."""

    def __init__(self, token: str = TOKEN, user: str = USER) -> None:
        from huggingface_hub.utils import httpx

        self.httpx = httpx
        self.token, self.user = token, user
        self.repos: dict[str, FakeRepo] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.external: list[tuple[str, str]] = []
        self.fault: Callable[[Any], Any] | None = None  # request -> Response/Exception/None
        self.seen_authorization: list[str] = []
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("POST", re.compile(r"/api/repos/create"), self._create_repo),
            ("GET", re.compile(r"/api/agent-harnesses"),  # huggingface_hub's user-agent registry
             lambda request: self._json({"standardEnvVars": [], "harnesses": {}})),
            ("POST", re.compile(r"/api/validate-yaml"), self._validate_yaml),
            ("POST", re.compile(r"/api/datasets/(?P<repo>[^/]+/[^/]+)/branch/(?P<rev>.+)"), self._create_branch),
            ("POST", re.compile(r"/api/datasets/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>.+)"), self._preupload),
            ("POST", re.compile(r"/api/datasets/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>.+)"), self._commit),
            ("POST", re.compile(r"/api/datasets/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)"), self._paths_info),
            ("GET", re.compile(r"/api/datasets/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(/(?P<path>.*))?"),
             self._tree),
            ("GET", re.compile(r"/api/datasets/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)"), self._info),
            ("GET", re.compile(r"/api/datasets/(?P<repo>[^/]+/[^/]+)"), self._info),
            ("POST", re.compile(r"/datasets/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch"), self._lfs_batch),
            ("PUT", re.compile(re.escape(LFS_PREFIX) + r"(?P<oid>[0-9a-f]{64})"), self._lfs_put),
            ("HEAD", re.compile(r"/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
             self._resolve),
            ("GET", re.compile(r"/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
             self._resolve),
            *self._model_routes(),
        ]

    def _model_routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        def model(func: Callable[..., Any]) -> Callable[..., Any]:
            return lambda request, **groups: func(request, kind="model", **groups)

        repo, rev = r"(?P<repo>[^/]+/[^/]+)", r"(?P<rev>[^/]+)"
        return [
            ("GET", re.compile(rf"/api/models/{repo}/tree/{rev}(/(?P<path>.*))?"), model(self._tree)),
            ("GET", re.compile(rf"/api/models/{repo}/revision/{rev}"), model(self._info)),
            ("GET", re.compile(rf"/api/models/{repo}"), model(self._info)),
            ("HEAD", re.compile(rf"/{repo}/resolve/{rev}/(?P<path>.+)"), model(self._resolve)),
            ("GET", re.compile(rf"/{repo}/resolve/{rev}/(?P<path>.+)"), model(self._resolve)),
        ]

    # -- plumbing ------------------------------------------------------------------------------
    def transport(self) -> Any:
        return self.httpx.MockTransport(self.handle)

    def handle(self, request: Any) -> Any:
        from urllib.parse import unquote

        path = unquote(request.url.path)
        self.requests.append((request.method, path))
        auth = request.headers.get("authorization")
        if auth:
            self.seen_authorization.append(auth)
        if self.fault is not None:
            injected = self.fault(request)
            if isinstance(injected, BaseException):
                raise injected
            if injected is not None:
                return injected
        if request.url.host in EXTERNAL_HOSTS:
            # datasets also asks the legacy script bucket and the dataset viewer; for a new repo
            # both answer "not found", and datasets goes on without them.
            self.external.append((request.method, str(request.url)))
            return self._json({"error": "Not found."}, 404)
        for method, pattern, func in self._routes:
            m = pattern.fullmatch(path)
            if m and method == request.method:
                return func(request, **{k: v for k, v in m.groupdict().items() if v is not None})
        self.unhandled.append((request.method, str(request.url)))
        return self._json({"error": "not implemented by the fake hub"}, 501)

    def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        return self.httpx.Response(status, json=data, headers=headers)

    def _authorized(self, request: Any) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def _repo(self, request: Any, repo: str, write: bool = False, kind: str = "dataset") -> FakeRepo | Any:
        if write and not self._authorized(request):
            return self._json({"error": "Invalid credentials in Authorization header"}, 401)
        found = self.repos.get(repo)
        if found is None or found.kind != kind or (found.private and not self._authorized(request)):
            return self._json({"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"})
        return found

    def _branch(self, repo: FakeRepo, rev: str) -> dict[str, FakeFile] | None:
        if rev in repo.branches:
            return repo.branches[rev]
        for name, head in repo.heads.items():
            if head == rev:
                return repo.branches[name]
        return None

    # -- write side ----------------------------------------------------------------------------
    def _create_repo(self, request: Any) -> Any:
        if not self._authorized(request):
            return self._json({"error": "Invalid credentials in Authorization header"}, 401)
        body = json.loads(request.content)
        if body.get("organization") not in (None, self.user):
            return self._json({"error": "You don't have the rights to create a dataset under this namespace"}, 403)
        repo_id = f"{body.get('organization') or self.user}/{body['name']}"
        url = f"https://huggingface.co/datasets/{repo_id}"
        if repo_id in self.repos:
            return self._json({"error": "You already created this dataset repo", "url": url}, 409)
        repo = FakeRepo(repo_id, private=body.get("visibility", "public") == "private")
        repo.branches["main"] = {".gitattributes": FakeFile(b"*.parquet filter=lfs diff=lfs merge=lfs -text\n",
                                                            False)}
        repo.heads["main"] = hashlib.sha1(f"{repo_id}:initial".encode()).hexdigest()
        self.repos[repo_id] = repo
        return self._json({"url": url, "name": repo_id, "id": repo_id})

    def _create_branch(self, request: Any, repo: str, rev: str) -> Any:
        found = self._repo(request, repo, write=True)
        if not isinstance(found, FakeRepo):
            return found
        if rev in found.branches:
            return self._json({"error": "Reference already exists"}, 409)
        found.branches[rev] = dict(found.branches["main"])
        found.heads[rev] = found.heads["main"]
        return self._json({})

    def _validate_yaml(self, request: Any) -> Any:
        content = json.loads(request.content)["content"]
        m = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            meta = yaml.safe_load(m.group(1)) if m else None
        except yaml.YAMLError as exc:
            return self._json({"errors": [{"message": f"invalid YAML: {exc}"}]}, 400)
        if not isinstance(meta, dict):
            return self._json({"errors": [{"message": "no metadata"}]}, 400)
        return self._json({"errors": [], "warnings": []})

    def _preupload(self, request: Any, repo: str, rev: str) -> Any:
        found = self._repo(request, repo, write=True)
        if not isinstance(found, FakeRepo):
            return found
        files = json.loads(request.content)["files"]
        out = []
        for f in files:
            sample = base64.b64decode(f["sample"])
            lfs = b"\0" in sample or f["path"].endswith((".parquet", ".png")) or f["size"] > 10_000_000
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": None})
        return self._json({"files": out, "commitOid": found.heads.get(rev)})

    def _lfs_batch(self, request: Any, repo: str) -> Any:
        found = self._repo(request, repo, write=True)
        if not isinstance(found, FakeRepo):
            return found
        objects = []
        for obj in json.loads(request.content)["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.blobs:
                entry["actions"] = {"upload": {"href": f"https://huggingface.co{LFS_PREFIX}{obj['oid']}"}}
            objects.append(entry)
        return self._json({"transfer": "basic", "objects": objects})

    def _lfs_put(self, request: Any, oid: str) -> Any:
        data = request.read()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._json({"error": "sha256 mismatch"}, 400)
        self.blobs[oid] = data
        return self._json({})

    def _commit(self, request: Any, repo: str, rev: str) -> Any:
        found = self._repo(request, repo, write=True)
        if not isinstance(found, FakeRepo):
            return found
        files = self._branch(found, rev)
        if files is None:
            return self._json({"error": f"Invalid rev id: {rev}"}, 404, {"X-Error-Code": "RevisionNotFound"})
        lines = [json.loads(line) for line in request.read().splitlines() if line.strip()]
        staged = dict(files)
        for item in lines[1:]:
            value = item["value"]
            if item["key"] == "file":
                staged[value["path"]] = FakeFile(base64.b64decode(value["content"]), False)
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.blobs:
                    return self._json({"error": f"LFS object {value['oid']} was never uploaded"}, 422)
                staged[value["path"]] = FakeFile(self.blobs[value["oid"]], True)
            elif item["key"] == "deletedFile":
                if staged.pop(value["path"], None) is None:
                    return self._json({"error": "A file with this name doesn't exist"}, 404,
                                      {"X-Error-Code": "EntryNotFound"})
            elif item["key"] == "deletedFolder":
                staged = {p: f for p, f in staged.items() if not p.startswith(value["path"].rstrip("/") + "/")}
        files.clear()
        files.update(staged)
        branch = next(name for name, f in found.branches.items() if f is files)
        sha = hashlib.sha1(f"{repo}:{len(found.commits)}:{sorted(staged)}".encode()).hexdigest()
        found.heads[branch] = sha
        found.commits.append({"branch": branch, "sha": sha, "summary": lines[0]["value"]["summary"],
                              "paths": [i["value"]["path"] for i in lines[1:]]})
        return self._json({"commitUrl": f"https://huggingface.co/datasets/{repo}/commit/{sha}", "commitOid": sha,
                           "success": True})

    # -- read side -----------------------------------------------------------------------------
    def _entry(self, path: str, f: FakeFile) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": path, "oid": f.oid, "size": len(f.data)}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
        return entry

    def _listing(self, files: dict[str, FakeFile], prefix: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = prefix.strip("/")
        base = f"{prefix}/" if prefix else ""
        out, folders = [], set()
        for path in sorted(files):
            if not path.startswith(base):
                continue
            rest = path[len(base):]
            if "/" in rest and not recursive:
                folders.add(base + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                folders.update(base + "/".join(parts[:i + 1]) for i in range(len(parts)))
            out.append(self._entry(path, files[path]))
        out += [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0}
                for d in sorted(folders)]
        return out

    def _tree(self, request: Any, repo: str, rev: str, path: str = "", kind: str = "dataset") -> Any:
        found = self._repo(request, repo, kind=kind)
        if not isinstance(found, FakeRepo):
            return found
        files = self._branch(found, rev)
        if files is None:
            return self._json({"error": "Invalid rev id"}, 404, {"X-Error-Code": "RevisionNotFound"})
        recursive = request.url.params.get("recursive", "false").lower() in ("1", "true")
        return self._json(self._listing(files, path, recursive))

    def _paths_info(self, request: Any, repo: str, rev: str) -> Any:
        found = self._repo(request, repo)
        if not isinstance(found, FakeRepo):
            return found
        files = self._branch(found, rev) or {}
        body = request.read().decode()
        try:
            paths = json.loads(body)["paths"]
        except json.JSONDecodeError:
            from urllib.parse import parse_qs

            paths = parse_qs(body).get("paths", [])
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._entry(p, files[p]))
            elif any(f.startswith(p + "/") for f in files) or p == "":
                out.append({"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0})
        return self._json(out)

    def _info(self, request: Any, repo: str, rev: str = "main", kind: str = "dataset") -> Any:
        found = self._repo(request, repo, kind=kind)
        if not isinstance(found, FakeRepo):
            return found
        files = self._branch(found, rev)
        if files is None:
            return self._json({"error": "Invalid rev id"}, 404, {"X-Error-Code": "RevisionNotFound"})
        sha = next((h for b, h in found.heads.items() if found.branches[b] is files), rev)
        now = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc).isoformat().replace("+00:00", ".000Z")
        return self._json({"_id": hashlib.sha1(repo.encode()).hexdigest()[:24], "id": repo,
                           "author": repo.split("/")[0], "sha": sha, "private": found.private, "disabled": False,
                           "gated": "manual" if found.gated else False, "downloads": 0, "likes": 0, "tags": [],
                           "lastModified": now, "createdAt": now,
                           "siblings": [{"rfilename": p} for p in sorted(files)]})

    def _resolve(self, request: Any, repo: str, rev: str, path: str, kind: str = "dataset") -> Any:
        found = self._repo(request, repo, kind=kind)
        if not isinstance(found, FakeRepo):
            return found
        if found.gated and not self._authorized(request):
            message = f"Access to model {repo} is restricted. You must have access to it and be authenticated."
            return self._json({"error": message}, 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": message})
        files = self._branch(found, rev)
        f = (files or {}).get(path)
        if f is None:
            return self._json({"error": "Entry not found"}, 404, {"X-Error-Code": "EntryNotFound"})
        sha = next((h for b, h in found.heads.items() if found.branches[b] is files), rev)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{f.sha256 if f.lfs else f.oid}"', "Accept-Ranges": "bytes"}
        if f.lfs:
            headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.data))})
        data, status = f.data, 200
        rng = request.headers.get("range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m:
                start = int(m[1]) if m[1] else max(0, len(data) - int(m[2]))
                end = int(m[2]) if m[1] and m[2] else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{min(end, len(data) - 1)}/{len(data)}"
                data, status = data[start:end + 1], 206
        headers["Content-Length"] = str(len(data))
        if request.method == "HEAD":
            return self.httpx.Response(status, headers=headers)
        return self.httpx.Response(status, content=data, headers=headers)

    # -- helpers for tests ---------------------------------------------------------------------
    def add_model(self, repo_id: str, files: dict[str, bytes], gated: bool = False, private: bool = False,
                  lfs: tuple[str, ...] = (".safetensors", ".gguf", ".bin")) -> str:
        """A model repo with `files` on main (weights as LFS files, as the Hub stores them); its head commit."""
        repo = FakeRepo(repo_id, private=private, kind="model", gated=gated)
        repo.branches["main"] = {p: FakeFile(data, p.endswith(lfs)) for p, data in files.items()}
        repo.heads["main"] = hashlib.sha1(f"{repo_id}:{sorted(files)}".encode()).hexdigest()
        self.repos[repo_id] = repo
        return repo.heads["main"]

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        return {p: f.data for p, f in self.repos[repo_id].branches[branch].items()}


@contextlib.contextmanager
def serving_fake_hub(monkeypatch: pytest.MonkeyPatch, home: Path) -> Iterator[FakeHub]:
    """Every huggingface_hub and datasets HTTP call goes to a FakeHub; online mode, Xet off, a token
    in HF_TOKEN, fresh HF_HOME and datasets cache. The conftest sets HF_HUB_OFFLINE=1, which both
    libraries read at import time, so the parsed constants are patched too."""
    import datasets.config
    import huggingface_hub
    from huggingface_hub import constants

    hub = FakeHub()
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", hub.token)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    huggingface_hub.set_client_factory(lambda: hub.httpx.Client(transport=hub.transport(), follow_redirects=True))
    try:
        yield hub
    finally:
        from huggingface_hub.utils._http import default_client_factory

        huggingface_hub.set_client_factory(default_client_factory)
        _clear_hub_caches()


def _clear_hub_caches() -> None:
    """HfFileSystem caches instances and directory listings across tests; start each test clean."""
    from huggingface_hub import HfFileSystem

    HfFileSystem.clear_instance_cache()
