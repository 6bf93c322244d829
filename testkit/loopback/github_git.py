"""The endpoints of GitHub's Git database (commits, trees, blobs, refs) and its tarballs, over a real repository.

Each handler takes the loopback, the path's match and the request's body (or query) and returns
(status, payload); `github_routes.ROUTES` maps paths to them.
"""

from __future__ import annotations

import base64
import re
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testkit.loopback.github_shapes import API, ApiError

if TYPE_CHECKING:
    from testkit.loopback.github_api import GitHubLoopback


def get_commit(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    sha = gh.resolve(m["ref"])
    return 200, {"sha": sha, "commit": {"tree": {"sha": gh.git("rev-parse", f"{sha}^{{tree}}")}}}


def tarball(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    sha = gh.resolve(m["ref"])
    prefix = f"{gh.owner}-{gh.name}-{sha[:7]}/"  # GitHub's archives wrap the tree in one folder
    data = subprocess.run(
        ["git", "-C", str(gh.repo), "archive", "--format=tar.gz", f"--prefix={prefix}", sha],
        capture_output=True,
        check=True,
    ).stdout
    return 200, data


def create_blob(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    content = body["content"]
    data = base64.b64decode(content) if body.get("encoding") == "base64" else content.encode()
    return 201, {"sha": gh.git("hash-object", "-w", "--stdin", stdin=data)}


def get_tree(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    """A tree as GitHub lists it: modes as git writes them (120000 for a symbolic link), one level or all."""
    try:
        sha = gh.git("rev-parse", "--verify", f"{m['sha']}^{{tree}}")
    except ApiError:
        raise ApiError(404, "Not Found") from None
    recursive = ("-r", "-t") if (query or {}).get("recursive") else ()
    listing = gh.git("ls-tree", "-z", "-l", "--full-tree", *recursive, sha)
    entries = []
    for record in filter(None, listing.split("\0")):
        meta, _, path = record.partition("\t")
        mode, kind, object_id, size = meta.split()
        entry = {"path": path, "mode": mode, "type": kind, "sha": object_id}
        entries.append(entry if size == "-" else {**entry, "size": int(size)})
    url = f"{API}/repos/{gh.owner}/{gh.name}/git/trees/{sha}"
    return 200, {"sha": sha, "url": url, "tree": entries, "truncated": False}


def create_tree(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if body.get("base_tree"):
            gh.git("read-tree", body["base_tree"], env=env)
        for entry in body["tree"]:
            if entry.get("sha") is None and "content" not in entry:
                gh.git("update-index", "--force-remove", entry["path"], env=env)
                continue
            sha = entry.get("sha") or gh.git("hash-object", "-w", "--stdin", stdin=entry["content"].encode())
            gh.git("update-index", "--add", "--cacheinfo", f"{entry['mode']},{sha},{entry['path']}", env=env)
        return 201, {"sha": gh.git("write-tree", env=env)}


def create_commit(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    parents = [arg for p in body.get("parents", []) for arg in ("-p", p)]
    env = {"GIT_AUTHOR_NAME": "forgeflow", "GIT_AUTHOR_EMAIL": "forgeflow@users.noreply.github.com",
           "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}  # fmt: skip
    sha = gh.git("commit-tree", body["tree"], *parents, "-m", body["message"], env=env)
    return 201, {"sha": sha, "tree": {"sha": body["tree"]}, "parents": [{"sha": p} for p in body.get("parents", [])]}


def get_ref(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    ref = f"refs/heads/{m['branch']}"
    try:
        sha = gh.git("rev-parse", "--verify", ref)
    except ApiError:
        raise ApiError(404, "Not Found") from None
    return 200, {"ref": ref, "object": {"type": "commit", "sha": sha}}


def create_ref(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    try:
        gh.git("update-ref", body["ref"], body["sha"], "0" * 40)
    except ApiError:
        raise ApiError(422, "Reference already exists") from None
    return 201, {"ref": body["ref"], "object": {"type": "commit", "sha": body["sha"]}}


def update_ref(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    ref = f"refs/heads/{m['branch']}"
    current = get_ref(gh, m, None)[1]["object"]["sha"]
    ancestor = subprocess.run(
        ["git", "-C", str(gh.repo), "merge-base", "--is-ancestor", current, body["sha"]], check=False
    )
    if not body.get("force") and ancestor.returncode != 0:
        raise ApiError(422, "Update is not a fast forward")
    gh.git("update-ref", ref, body["sha"], current)
    return 200, {"ref": ref, "object": {"type": "commit", "sha": body["sha"]}}


def get_git_commit(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    sha = gh.resolve(m["sha"])
    parents = gh.git("rev-list", "--parents", "-n", "1", sha).split()[1:]
    return 200, {
        "sha": sha,
        "tree": {"sha": gh.git("rev-parse", f"{sha}^{{tree}}")},
        "parents": [{"sha": p} for p in parents],
    }
