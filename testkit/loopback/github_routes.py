"""The endpoints the loopback serves, one small handler each, and the table that routes paths to them.

A handler takes the loopback, the path's match and the request's body (for a GET, its query) and
returns (status, payload), or raises `ApiError`. Here: the repository, issues and their comments,
reactions, pull requests and reviews, permissions, check runs and commit statuses; the Git database
endpoints are in `github_git`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from testkit.loopback.github_git import (
    create_blob,
    create_commit,
    create_ref,
    create_tree,
    get_commit,
    get_git_commit,
    get_ref,
    get_tree,
    tarball,
    update_ref,
)
from testkit.loopback.github_shapes import (
    API,
    BOT,
    REACTIONS,
    ApiError,
    check_run_json,
    issue_json,
    new_comment,
    now,
    pull_full,
    pull_json,
    repo_json,
    review_comment,
    review_json,
    user_json,
)

if TYPE_CHECKING:
    from testkit.loopback.github_api import GitHubLoopback

Handler = Callable[["GitHubLoopback", re.Match[str], Any], tuple[int, Any]]
REVIEW_EVENTS = {"REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED", "APPROVE": "APPROVED"}
CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CHECK_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out")
COMMIT_STATES = ("error", "failure", "pending", "success")


# --- the repository, issues, their comments and reactions -----------------------------------------


def get_repo(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, {**repo_json(gh), "permissions": {"admin": False, "push": True, "pull": True}}


def get_issue(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, issue_json(gh, int(m["n"]))


def list_comments(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, gh.conversation(int(m["n"]))


def create_comment(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    thread = gh.conversation(int(m["n"]))
    comment = new_comment(gh, int(m["n"]), BOT, body["body"])
    thread.append(comment)
    return 201, comment


def _find_comment(gh: GitHubLoopback, comment_id: int) -> dict[str, Any]:
    threads = [i.comments for i in gh.issues.values()] + [p.get("comments", []) for p in gh.pulls.values()]
    found: dict[str, Any] | None = next((c for thread in threads for c in thread if c["id"] == comment_id), None)
    if found is None:
        raise ApiError(404, "Not Found")
    return found


def _reactions(gh: GitHubLoopback, m: re.Match[str]) -> list[dict[str, Any]]:
    """The reactions to the comment or issue the path names (404 when it does not exist)."""
    if m.groupdict().get("id") is not None:
        subject = ("comment", _find_comment(gh, int(m["id"]))["id"])
    else:
        subject = ("issue", int(m["n"]))
        gh.conversation(subject[1])
    return gh.reactions.setdefault(subject, [])


def list_reactions(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    content = (query or {}).get("content")
    return 200, [r for r in _reactions(gh, m) if content in (None, r["content"])]


def create_reaction(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    """GitHub's reactions are idempotent: the same user reacting the same way again gets the first one, 200."""
    if body.get("content") not in REACTIONS:
        raise ApiError(422, "Validation Failed")
    with gh._lock:  # concurrent identical reactions still make one
        found = _reactions(gh, m)
        same = next((r for r in found if r["content"] == body["content"] and r["user"]["login"] == BOT), None)
        if same is not None:
            return 200, same
        rid = gh.new_id()
        reaction = {"id": rid, "node_id": f"REA_{rid}", "user": user_json(BOT), "content": body["content"],
                    "created_at": now()}  # fmt: skip
        found.append(reaction)
    return 201, reaction


# --- pull requests, reviews and permissions -------------------------------------------------------


def list_pulls(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    query = query or {}
    head = str(query.get("head", ""))
    found = [
        pull_json(gh, n)
        for n, pull in gh.pulls.items()
        if (not head or f"{gh.owner}:{pull['head']['ref']}" == head) and pull["state"] == query.get("state", "open")
    ]
    return 200, found


def create_pull(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    if any(p["head"]["ref"] == body["head"] and p["state"] == "open" for p in gh.pulls.values()):
        raise ApiError(422, f"A pull request already exists for {gh.owner}:{body['head']}.")
    number = 100 + len(gh.pulls)
    gh.pulls[number] = {
        "title": body["title"],
        "body": body.get("body", ""),
        "state": "open",
        "draft": body.get("draft", False),
        "head": {"ref": body["head"]},
        "base": {"ref": body["base"]},
        "user": {"login": BOT},
        "created_at": now(),
    }
    return 201, pull_json(gh, number)


def get_pull(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, pull_full(gh, int(m["n"]))


def update_pull(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    number = int(m["n"])
    if number not in gh.pulls:
        raise ApiError(404, "Not Found")
    gh.pulls[number].update({k: v for k, v in body.items() if k in ("title", "body")})
    return 200, pull_json(gh, number)


def list_reviews(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, gh.reviews.get(int(m["n"]), [])


def create_review(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    """A review by the token's bot; also kept: the request's `event` and `comments` (for tests to read)."""
    number = int(m["n"])
    if number not in gh.pulls:
        raise ApiError(404, "Not Found")
    pull = gh.pulls[number]
    commit = body.get("commit_id") or gh.resolve(pull["head"]["ref"])
    state = REVIEW_EVENTS.get(body.get("event") or "", "PENDING")
    review = review_json(gh, number, BOT, state, body.get("body", ""), commit)
    review.update({"event": body.get("event"), "comments": body.get("comments", [])})
    gh.reviews.setdefault(number, []).append(review)
    base_head = (gh.resolve(pull["base"]["ref"]), commit)
    specs = [(c["path"], c.get("line") or c.get("position") or 1, c["body"]) for c in review["comments"]]
    gh.review_comments.setdefault(number, []).extend(
        review_comment(gh, number, review["id"], base_head, BOT, spec) for spec in specs
    )
    return 200, review


def list_review_comments(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    if int(m["n"]) not in gh.pulls:
        raise ApiError(404, "Not Found")
    return 200, gh.review_comments.get(int(m["n"]), [])


def list_comments_for_review(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    number, review_id = int(m["n"]), int(m["review_id"])
    if not any(r["id"] == review_id for r in gh.reviews.get(number, [])):
        raise ApiError(404, "Not Found")
    return 200, [c for c in gh.review_comments.get(number, []) if c["pull_request_review_id"] == review_id]


def get_permission(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    permission = gh.permissions.get(m["user"], "read")
    return 200, {"permission": permission, "role_name": permission, "user": {"login": m["user"]}}


# --- check runs and commit statuses ---------------------------------------------------------------


def _commit(gh: GitHubLoopback, sha: str) -> str:
    try:
        return gh.resolve(sha)
    except ApiError:
        raise ApiError(422, f"No commit found for SHA: {sha}") from None


def _set_check_run(gh: GitHubLoopback, run: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Apply a create or update as GitHub does: a conclusion completes the run, completing needs one;
    each state the run passes through is kept in `check_run_states`."""
    fields = ("name", "details_url", "external_id", "status", "conclusion")
    changed: dict[str, Any] = {**run, **{k: body[k] for k in fields if k in body}}
    changed["output"] = {**run["output"], **{k: v for k, v in (body.get("output") or {}).items() if k != "annotations"}}
    if changed["conclusion"] is not None:
        changed["status"] = "completed"
    valid_conclusion = changed["conclusion"] in (None, *CHECK_CONCLUSIONS)
    complete = changed["status"] != "completed" or changed["conclusion"] is not None
    if changed["status"] not in CHECK_STATUSES or not valid_conclusion or not complete:
        raise ApiError(422, "Validation Failed")
    if changed["status"] == "completed":
        changed["completed_at"] = body.get("completed_at") or run["completed_at"] or now()
    gh.check_runs[run["id"]] = changed
    states = gh.check_run_states.setdefault(run["id"], [])
    states.append((changed["status"], changed["conclusion"], changed["output"].get("summary")))
    return check_run_json(gh, changed)


def create_check_run(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    run_id, started = gh.new_id(), body.get("started_at") or now()
    run = {"id": run_id, "name": body["name"], "head_sha": _commit(gh, body["head_sha"]), "external_id": "",
           "details_url": None, "status": "queued", "conclusion": None, "started_at": started, "completed_at": None,
           "output": {"title": None, "summary": None, "text": None}}  # fmt: skip
    return 201, _set_check_run(gh, run, body)


def update_check_run(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    run = gh.check_runs.get(int(m["id"]))
    if run is None:
        raise ApiError(404, "Not Found")
    return 200, _set_check_run(gh, run, body)


def list_check_runs(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    """Newest first; by default (`filter=latest`) only the newest run of each name, as GitHub lists them."""
    query, sha = query or {}, gh.resolve(unquote(m["ref"]))
    runs = [r for r in reversed(gh.check_runs.values()) if r["head_sha"] == sha]
    runs = [
        r for r in runs if query.get("check_name") in (None, r["name"]) and query.get("status") in (None, r["status"])
    ]
    if query.get("filter", "latest") == "latest":
        runs = [r for i, r in enumerate(runs) if r["name"] not in {o["name"] for o in runs[:i]}]
    return 200, {"total_count": len(runs), "check_runs": [check_run_json(gh, r) for r in runs]}


def create_status(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    sha = _commit(gh, m["sha"])
    if body.get("state") not in COMMIT_STATES:
        raise ApiError(422, "Validation Failed")
    sid, created = gh.new_id(), now()
    status = {"url": f"{API}/repos/{gh.owner}/{gh.name}/statuses/{sha}", "avatar_url": user_json(BOT)["avatar_url"],
              "id": sid, "node_id": f"SC_{sid}", "state": body["state"], "description": body.get("description"),
              "target_url": body.get("target_url"), "context": body.get("context") or "default",
              "created_at": created, "updated_at": created, "creator": user_json(BOT)}  # fmt: skip
    gh.statuses.setdefault(sha, []).append(status)
    return 201, status


def list_statuses(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    return 200, list(reversed(gh.statuses.get(gh.resolve(unquote(m["ref"])), [])))


# --- the table: (method, path below /repos/{owner}/{name}) -> handler -----------------------------

ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", ""): get_repo,
    ("GET", r"/issues/(?P<n>\d+)"): get_issue,
    ("GET", r"/issues/(?P<n>\d+)/comments"): list_comments,
    ("POST", r"/issues/(?P<n>\d+)/comments"): create_comment,
    ("GET", r"/issues/comments/(?P<id>\d+)/reactions"): list_reactions,
    ("POST", r"/issues/comments/(?P<id>\d+)/reactions"): create_reaction,
    ("GET", r"/issues/(?P<n>\d+)/reactions"): list_reactions,
    ("POST", r"/issues/(?P<n>\d+)/reactions"): create_reaction,
    ("GET", r"/commits/(?P<ref>[^/]+)"): get_commit,
    ("GET", r"/tarball/(?P<ref>[^/]+)"): tarball,
    ("POST", r"/git/blobs"): create_blob,
    ("GET", r"/git/trees/(?P<sha>[^/]+)"): get_tree,
    ("POST", r"/git/trees"): create_tree,
    ("POST", r"/git/commits"): create_commit,
    ("GET", r"/git/ref/heads/(?P<branch>.+)"): get_ref,
    ("POST", r"/git/refs"): create_ref,
    ("PATCH", r"/git/refs/heads/(?P<branch>.+)"): update_ref,
    ("GET", r"/git/commits/(?P<sha>[0-9a-f]{40})"): get_git_commit,
    ("GET", r"/collaborators/(?P<user>[^/]+)/permission"): get_permission,
    ("GET", r"/pulls"): list_pulls,
    ("POST", r"/pulls"): create_pull,
    ("GET", r"/pulls/(?P<n>\d+)"): get_pull,
    ("PATCH", r"/pulls/(?P<n>\d+)"): update_pull,
    ("GET", r"/pulls/(?P<n>\d+)/reviews"): list_reviews,
    ("POST", r"/pulls/(?P<n>\d+)/reviews"): create_review,
    ("GET", r"/pulls/(?P<n>\d+)/reviews/(?P<review_id>\d+)/comments"): list_comments_for_review,
    ("GET", r"/pulls/(?P<n>\d+)/comments"): list_review_comments,
    ("POST", r"/check-runs"): create_check_run,
    ("PATCH", r"/check-runs/(?P<id>\d+)"): update_check_run,
    ("GET", r"/commits/(?P<ref>.+)/check-runs"): list_check_runs,
    ("POST", r"/statuses/(?P<sha>[^/]+)"): create_status,
    ("GET", r"/commits/(?P<ref>.+)/statuses"): list_statuses,
}
APP_ONLY = {create_check_run, update_check_run}  # GitHub lets only GitHub Apps write check runs
