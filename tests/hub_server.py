"""A loopback stand-in for the Hugging Face Hub HTTP API, for tests only.

It speaks the subset of the Hub API that `huggingface_hub` (and, through it, `transformers`) uses to create a model
repo, upload files in one commit and download them again:

    GET  /api/whoami-v2                                   token check
    POST /api/repos/create                                create a model repo (initial commit: .gitattributes)
    POST /api/validate-yaml                               model-card metadata check (always valid here)
    GET  /api/models/{repo}[/revision/{rev}]              repo info (sha, siblings, private)
    POST /api/models/{repo}/preupload/{rev}               every file is uploaded "regular": inline in the commit
    POST /api/models/{repo}/commit/{rev}                  NDJSON: header, file (base64), deletedFile, deletedFolder
    GET  /api/models/{repo}/tree/{rev}[/{path}]           tree listing (recursive or not)
    POST /api/models/{repo}/paths-info/{rev}              info about given paths
    GET  /api/models/{repo}/refs, /commits/{rev}          branches and history
    POST /api/models/{repo}/branch/{name}                 create a branch
    HEAD|GET /{repo}/resolve/{rev}/{path}                 file content with ETag, X-Repo-Commit, Content-Length

Revisions are branch names or full commit hashes. A commit is built completely (new tree, new commit object) before
the branch ref moves, under a lock: a commit is visible entirely or not at all. `fail_commits` makes the next commits
die mid-upload (the connection is closed after half the body was read), to test that nothing partial appears.

Usage:

    with LoopbackHub(token="hf_test") as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test"}   # set before huggingface_hub is imported
"""

import base64
import hashlib
import itertools
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_hash(content: bytes) -> str:
    """The git object id of a blob: what the Hub reports as a regular file's `oid` / ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: Optional[str]
    title: str
    message: str
    files: dict  # path -> bytes: the full tree at this commit
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"))


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict = field(default_factory=dict)  # name -> commit oid
    commits: dict = field(default_factory=dict)  # oid -> Commit

    def resolve(self, revision: str) -> Optional[Commit]:
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        return self.commits.get(revision) if COMMIT_HASH.match(revision) else None

    def history(self, commit: Commit) -> list:
        chain = [commit]
        while chain[-1].parent is not None:
            chain.append(self.commits[chain[-1].parent])
        return chain


class HubError(Exception):
    """An HTTP error answer: status, `X-Error-Code` header and message."""

    def __init__(self, status: int, message: str, code: Optional[str] = None, commit: Optional[str] = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.commit, self.extra = status, message, code, commit, extra


class LoopbackHub:
    r"""
    A threaded HTTP server on 127.0.0.1 (a free port) holding model repos in memory.

    Args:
        token (`str`): the one access token accepted (`Authorization: Bearer <token>`).
        user (`str`): the user that token belongs to (the namespace of `create_repo("name")`).

    Attributes:
        url (`str`): the endpoint to put in `HF_ENDPOINT`.
        repos (`dict[str, Repo]`): the stored repos.
        requests (`list[tuple[str, str]]`): every `(method, path)` received, in order.
        fail_commits (`int`): the next that many commit requests die mid-upload.
    """

    def __init__(self, token: str = "hf_loopback_token", user: str = "tester"):
        self.token, self.user = token, user
        self.repos: dict = {}
        self.requests: list = []
        self.fail_commits = 0
        self.lock = threading.Lock()
        self._counter = itertools.count()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LoopbackHub":
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----------------------------------------------------------------------------------------------------------
    # repository operations (all under `self.lock`)

    def create_repo(self, repo_id: str, private: bool = False) -> Repo:
        with self.lock:
            if repo_id in self.repos:  # the Hub names the existing repo (create_repo(exist_ok=True) reads it)
                raise HubError(409, f"You already created this model repo: {repo_id}", url=f"{self.url}/{repo_id}")
            repo = Repo(repo_id, private)
            first = self._new_commit(None, "initial commit", "", {".gitattributes": GITATTRIBUTES})
            repo.commits[first.oid] = first
            repo.branches["main"] = first.oid
            self.repos[repo_id] = repo
            return repo

    def commit(self, repo: Repo, branch: str, header: dict, operations: list) -> Commit:
        """Applies `operations` to the branch head and moves the branch: all or nothing."""
        with self.lock:
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = repo.commits[repo.branches[branch]]
            parent = header.get("parentCommit")
            if parent is not None and parent != head.oid:
                raise HubError(412, f"A commit has happened since {parent}: the branch is at {head.oid}")
            files = dict(head.files)
            for key, value in operations:
                path = value["path"]
                if key == "file":
                    files[path] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"Cannot delete {path}: no such file", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    files = {p: c for p, c in files.items() if not p.startswith(prefix)}
                else:
                    raise HubError(400, f"Unsupported commit operation {key!r} (this server takes regular uploads)")
            commit = self._new_commit(head.oid, header.get("summary", ""), header.get("description", ""), files)
            repo.commits[commit.oid] = commit
            repo.branches[branch] = commit.oid  # the only visible change, made last
            return commit

    def _new_commit(self, parent, title, message, files) -> Commit:
        seed = f"{parent}|{title}|{next(self._counter)}|{time.time_ns()}".encode()
        return Commit(hashlib.sha1(seed).hexdigest(), parent, title, message, files)

    def files_at(self, repo_id: str, revision: str = "main") -> dict:
        """The `{path: bytes}` tree of a repo at a revision (for test assertions)."""
        with self.lock:
            return dict(self.repos[repo_id].resolve(revision).files)

    def commit_titles(self, repo_id: str, revision: str = "main") -> list:
        """Commit titles on a branch, newest first (for test assertions)."""
        with self.lock:
            repo = self.repos[repo_id]
            return [c.title for c in repo.history(repo.resolve(revision))]


# --------------------------------------------------------------------------------------------------------------
# HTTP layer


def _make_handler(hub: LoopbackHub):
    class Handler(_HubRequestHandler):
        pass

    Handler.hub = hub
    return Handler


class _HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    hub: LoopbackHub

    def log_message(self, format, *args):  # quiet: tests read `hub.requests` instead
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.hub.requests.append((method, url.path))
        segments = url.path.strip("/").split("/")
        try:
            route = self._route(method, segments)
            if route is None:
                raise HubError(404, f"Not found: {method} {url.path}")
            route()
        except HubError as error:
            self._send_error(error)
        except _ConnectionKilled:
            self.close_connection = True
        except Exception as error:  # a bug here: answer 500 with the reason rather than drop the connection
            self._send_error(HubError(500, f"loopback Hub failed on {method} {url.path}: {error!r}"))

    def _route(self, method: str, seg: list):
        if seg[:2] == ["api", "whoami-v2"] and method == "GET":
            return self._whoami
        if seg[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo
        if seg[:2] == ["api", "validate-yaml"] and method == "POST":
            return lambda: (self._read_body(), self._send_json({"errors": [], "warnings": []}))
        if seg[:2] == ["api", "models"] and len(seg) >= 4:
            repo_id, action, rest = f"{seg[2]}/{seg[3]}", seg[4] if len(seg) > 4 else "", seg[5:]
            routes = {
                ("GET", ""): lambda: self._repo_info(repo_id, "main"),
                ("GET", "revision"): lambda: self._repo_info(repo_id, _rev(rest)),
                ("POST", "preupload"): lambda: self._preupload(repo_id, _rev(rest)),
                ("POST", "commit"): lambda: self._commit(repo_id, _rev(rest)),
                ("GET", "tree"): lambda: self._tree(repo_id, _rev(rest), unquote("/".join(rest[1:]))),
                ("POST", "paths-info"): lambda: self._paths_info(repo_id, _rev(rest)),
                ("GET", "refs"): lambda: self._refs(repo_id),
                ("GET", "commits"): lambda: self._commits(repo_id, _rev(rest)),
                ("POST", "branch"): lambda: self._create_branch(repo_id, _rev(rest)),
            }
            return routes.get((method, action))
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return lambda: self._resolve(f"{seg[0]}/{seg[1]}", unquote(seg[3]), unquote("/".join(seg[4:])), method)
        return None

    # ----------------------------------------------------------------------------------------------------------
    # authentication and lookup

    def _token(self) -> Optional[str]:
        header = self.headers.get("Authorization", "")
        return header[len("Bearer ") :] if header.startswith("Bearer ") else None

    def _authenticated(self, required: bool) -> bool:
        token = self._token()
        if token is None:
            if required:
                raise HubError(401, "You must be authenticated to access this endpoint (no token was sent).")
            return False
        if token != self.hub.token:
            raise HubError(401, "Invalid credentials in Authorization header")
        return True

    def _repo(self, repo_id: str, write: bool = False) -> Repo:
        authenticated = self._authenticated(required=write)
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not authenticated):
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ----------------------------------------------------------------------------------------------------------
    # endpoints

    def _whoami(self):
        self._authenticated(required=True)
        self._send_json(
            {
                "type": "user",
                "name": self.hub.user,
                "fullname": self.hub.user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": "write"}},
            }
        )

    def _create_repo(self):
        self._authenticated(required=True)
        body = json.loads(self._read_body() or b"{}")
        if body.get("type", "model") not in (None, "model"):
            raise HubError(400, f"This server only holds model repos, got type={body.get('type')!r}")
        repo_id = f"{body.get('organization') or self.hub.user}/{body['name']}"
        private = body.get("visibility", "private" if body.get("private") else "public") == "private"
        self.hub.create_repo(repo_id, private=private)
        self._send_json({"url": f"{self.hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _repo_info(self, repo_id: str, revision: str):
        repo = self._repo(repo_id)
        commit = self._commit_at(repo, revision)
        self._send_json(
            {
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.oid,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "tags": [],
                "lastModified": commit.date,
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            }
        )

    def _preupload(self, repo_id: str, revision: str):
        repo = self._repo(repo_id, write=True)
        files = json.loads(self._read_body())["files"]
        existing = repo.resolve(revision).files if repo.resolve(revision) else {}
        self._send_json(
            {
                "files": [
                    {
                        "path": f["path"],
                        "uploadMode": "regular",
                        "shouldIgnore": False,
                        "oid": git_blob_hash(existing[f["path"]]) if f["path"] in existing else None,
                    }
                    for f in files
                ]
            }
        )

    def _commit(self, repo_id: str, revision: str):
        repo = self._repo(repo_id, write=True)
        length = int(self.headers.get("Content-Length", 0))
        if self.hub.fail_commits > 0:
            self.hub.fail_commits -= 1
            self.rfile.read(length // 2)  # die mid-upload: half the body read, no answer
            self.connection.shutdown(socket.SHUT_RDWR)
            raise _ConnectionKilled()
        lines = [json.loads(line) for line in self.rfile.read(length).splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        operations = [(line["key"], line["value"]) for line in lines[1:]]
        commit = self.hub.commit(repo, revision, lines[0]["value"], operations)
        self._send_json(
            {
                "commitUrl": f"{self.hub.url}/{repo_id}/commit/{commit.oid}",
                "commitOid": commit.oid,
                "pullRequestUrl": None,
                "success": True,
            }
        )

    def _tree(self, repo_id: str, revision: str, folder: str):
        commit = self._commit_at(self._repo(repo_id), revision)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        entries, folders = [], set()
        for path in sorted(p for p in commit.files if p.startswith(prefix)):
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                sub = prefix + "/".join(parts[:depth])
                if (recursive or depth == 1) and sub not in folders:
                    folders.add(sub)
                    entries.append(
                        {"type": "directory", "oid": hashlib.sha1(sub.encode()).hexdigest(), "size": 0, "path": sub}
                    )
            if recursive or len(parts) == 1:
                entries.append(_file_entry(path, commit.files[path]))
        if prefix and not entries:
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound", commit.oid)
        self._send_json(entries)

    def _paths_info(self, repo_id: str, revision: str):
        commit = self._commit_at(self._repo(repo_id), revision)
        raw = self._read_body().decode()
        body = json.loads(raw) if raw.startswith("{") else {k: v for k, v in parse_qs(raw).items()}
        paths = body.get("paths", [])
        self._send_json(
            [
                _file_entry(p, commit.files[p])
                for p in ([paths] if isinstance(paths, str) else paths)
                if p in commit.files
            ]
        )

    def _refs(self, repo_id: str):
        repo = self._repo(repo_id)
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
            for name, oid in sorted(repo.branches.items())
        ]
        self._send_json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def _commits(self, repo_id: str, revision: str):
        repo = self._repo(repo_id)
        history = repo.history(self._commit_at(repo, revision))
        self._send_json(
            [
                {
                    "id": c.oid,
                    "authors": [{"user": self.hub.user}],
                    "date": c.date,
                    "title": c.title,
                    "message": c.message,
                }
                for c in history
            ]
        )

    def _create_branch(self, repo_id: str, branch: str):
        repo = self._repo(repo_id, write=True)
        body = json.loads(self._read_body() or b"{}")
        start = self._commit_at(repo, body.get("startingPoint") or "main")
        with self.hub.lock:
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            repo.branches[branch] = start.oid
        self._send_json({})

    def _resolve(self, repo_id: str, revision: str, path: str, method: str):
        commit = self._commit_at(self._repo(repo_id), revision)
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit.oid)
        content = commit.files[path]
        status, start, end = 200, 0, len(content)
        match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        if match:  # resumed download
            status, start = 206, int(match.group(1))
            end = min(len(content), int(match.group(2)) + 1) if match.group(2) else len(content)
        body = content[start:end]
        headers = {
            "ETag": f'"{git_blob_hash(content)}"',
            "X-Repo-Commit": commit.oid,
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(content)}"
        self._send(status, body, headers, head_only=(method == "HEAD"))

    # ----------------------------------------------------------------------------------------------------------
    # I/O

    def _read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _send_json(self, value, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def _send_error(self, error: HubError) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": error.message}
        if error.code:
            headers["X-Error-Code"] = error.code
        if error.commit:
            headers["X-Repo-Commit"] = error.commit
        self.close_connection = True  # an unread request body must not be taken for the next request
        self._send(
            error.status,
            json.dumps({"error": error.message, **error.extra}).encode(),
            headers,
            head_only=(self.command == "HEAD"),
        )

    def _send(self, status: int, body: bytes, headers: dict, head_only: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head_only:
            self.wfile.write(body)


class _ConnectionKilled(Exception):
    pass


def _rev(rest: list) -> str:
    if not rest or not rest[0]:
        raise HubError(400, "A revision is required in this URL")
    return unquote(rest[0])


def _file_entry(path: str, content: bytes) -> dict:
    return {"type": "file", "oid": git_blob_hash(content), "size": len(content), "path": path}


if __name__ == "__main__":  # manual use: python tests/hub_server.py, then HF_ENDPOINT=<url> HF_TOKEN=<token> ...
    with LoopbackHub() as server:
        print(f"HF_ENDPOINT={server.url} HF_TOKEN={server.token}", flush=True)
        threading.Event().wait()
