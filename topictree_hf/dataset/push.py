"""`push_dataset`: upload a built dataset folder to the Hub in one commit.

One commit holds every file, the README with its load snippet pointed at the repo, and deletions
of stale `data/`/`assets/` files from an earlier push (a leftover shard would be read as data).
Nothing local is written or deleted, so a failed push can simply be rerun. The token comes from
huggingface_hub (`HF_TOKEN` or `hf auth login`) and is never put in a message or a log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub.utils import httpx

from topictree_hf import __version__
from topictree_hf.dataset.bars import library_bars
from topictree_hf.dataset.card import load_snippet, read_section, replace_section
from topictree_hf.dataset.verify import DatasetFolder, check_dataset_folder
from topictree_hf.errors import HubError

logger = logging.getLogger(__name__)

NOT_LOGGED_IN = "Not logged in: set HF_TOKEN or run `hf auth login`"
MANAGED_PREFIXES = ("data/", "assets/")
MAX_SCANNED_BYTES = 50_000_000


@dataclass(slots=True)
class PushResult:
    repo_id: str
    revision: str
    files: list[tuple[str, int]]  # (path in repo, bytes)
    deleted: list[str] = field(default_factory=list)
    private: bool = True
    dry_run: bool = False
    commit_url: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def push_dataset(folder: Path | str, repo_id: str, *, private: bool | None = None, revision: str | None = None,
                 dry_run: bool = False, commit_message: str | None = None) -> PushResult:
    """Upload `folder` (made by `build_dataset`) to the dataset repo `repo_id`.
    `private=None` takes `hub.private` from the folder's generation.yaml (default private);
    an existing repo keeps its visibility. `dry_run` lists the upload without any network call."""
    checked = check_dataset_folder(folder)
    _check_repo_id(repo_id)
    private = _default_private(checked.path) if private is None else private
    result = PushResult(repo_id, revision or "main", [(f, checked.size(f)) for f in checked.files],
                        private=private, dry_run=dry_run)
    if dry_run:
        return result
    api, token = _api()
    _refuse_token_leak(checked, token)
    try:
        result.repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
        if revision and revision != "main":
            api.create_branch(result.repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        remote = api.list_repo_files(result.repo_id, repo_type="dataset", revision=revision)
        operations, result.deleted = _operations(checked, result.repo_id, remote)
        with library_bars():
            info = api.create_commit(result.repo_id, operations, repo_type="dataset", revision=revision,
                                     commit_message=commit_message or f"Upload dataset with topictree-hf {__version__}")
    except (OSError, ValueError, RuntimeError, httpx.HTTPError) as exc:  # HfHubHTTPError, transport, LFS
        raise _hub_error(exc, result.repo_id) from exc
    result.commit_url = info.commit_url
    return result


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(f"invalid repo id {repo_id!r}; use NAMESPACE/NAME with letters, digits, '-', '_', '.' "
                       "(e.g. your-name/historical-events-qa)") from None
    if repo_id.count("/") != 1:
        raise HubError(f"repo id {repo_id!r} needs a namespace: use NAMESPACE/NAME, e.g. your-name/{repo_id}")


def _default_private(path: Path) -> bool:
    try:
        data = yaml.safe_load((path / "generation.yaml").read_text(encoding="utf-8")) or {}
        return bool(data.get("hub", {}).get("private", True))
    except (OSError, yaml.YAMLError, AttributeError):
        return True


def _api() -> tuple[Any, str]:
    from huggingface_hub import HfApi, constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise HubError("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it and rerun `topictree push`")
    token = get_token()
    if not token:
        raise HubError(NOT_LOGGED_IN)
    return HfApi(token=token, library_name="topictree-hf", library_version=__version__), token


def _refuse_token_leak(folder: DatasetFolder, token: str) -> None:
    """Last guard before publishing: no text file of the folder may contain the token (a config
    edited by hand, a pasted command). The message names the file, never the token."""
    for rel in folder.files:
        path = folder.path / rel
        if rel.endswith(".parquet") or path.stat().st_size > MAX_SCANNED_BYTES:
            continue
        if token.encode() in path.read_bytes():
            raise HubError(f"{path} contains your Hub token; remove it from that file before pushing")


def _operations(folder: DatasetFolder, repo_id: str, remote: list[str]) -> tuple[list[Any], list[str]]:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    adds = []
    for rel in folder.files:
        if rel == "README.md":
            adds.append(CommitOperationAdd("README.md", _card_for_repo(folder.card_text, repo_id).encode("utf-8")))
        else:
            adds.append(CommitOperationAdd(rel, str(folder.path / rel)))
    local = set(folder.files)
    stale = sorted(p for p in remote if p.startswith(MANAGED_PREFIXES) and p not in local)
    return [*(CommitOperationDelete(p) for p in stale), *adds], stale


def _card_for_repo(card_text: str, repo_id: str) -> str:
    """Point the card's load snippet at the repo it is pushed to (a hand-edited card without the
    section is uploaded as it is)."""
    if read_section(card_text, "load") is None:
        return card_text
    return replace_section(card_text, "load", load_snippet(repo_id))


def _hub_error(exc: BaseException, repo_id: str) -> HubError:
    """One line per failure kind; server text is reduced to a status code so nothing sensitive
    (and nothing multi-line) reaches the terminal."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, OfflineModeIsEnabled):
        return HubError("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it and rerun `topictree push`")
    status = exc.response.status_code if isinstance(exc, HfHubHTTPError) and exc.response is not None else None
    if status == 401:
        return HubError("Not logged in or the token is invalid: set HF_TOKEN or run `hf auth login`")
    if status == 403:
        return HubError(f"your token cannot write to {repo_id}: use a token with write access to that "
                        "namespace (`hf auth login`)")
    if isinstance(exc, RepositoryNotFoundError) or status == 404:
        return HubError(f"dataset repo {repo_id} was not found or is not yours; check the repo id and the "
                        "token's namespace")
    if isinstance(exc, ValueError) and "metadata" in str(exc).lower():
        return HubError("the Hub rejected the card's YAML; rebuild the folder with `topictree build "
                        "--overwrite` and push again")
    what = f"HTTP {status}" if status else exc.__class__.__name__
    if isinstance(exc, HfHubHTTPError | httpx.HTTPError | OSError | RuntimeError):
        return HubError(f"network failure while pushing to {repo_id} ({what}); nothing local was changed: "
                        "check the connection and rerun `topictree push`")
    return HubError(f"the Hub refused the upload to {repo_id} ({what}); nothing local was changed: rerun "
                    "`topictree push`, with TOPICTREE_DEBUG=1 to see the server's answer")
