"""A Hub model, `ORG/NAME[@REVISION]`: from the local Hugging Face cache, else downloaded once.

"Offline" in this project means no hosted API and no key, not a refusal to fetch the weights the
user names: like vLLM and transformers, a run fetches its model on first use. Nothing else goes to
the network. The CLI sets HF_HUB_OFFLINE=1 for every library; huggingface_hub reads that variable
once, at import, into `constants.HF_HUB_OFFLINE`, which its HTTP layer checks on every request, so
the flag is lifted for the one `snapshot_download` call here and put back after it.

The download is refused, with today's remedy (`hf download`), under `topictree --offline`, or when
the user set HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1) themselves; the CLI writes that choice to
TOPICTREE_OFFLINE before it sets HF_HUB_OFFLINE=1. A library caller without the CLI gets
huggingface_hub's own rule: HF_HUB_OFFLINE=1 refuses.

A download draws one progress bar and resumes: huggingface_hub keeps a partly downloaded file as
`.incomplete` in the cache and continues from its end on the next call (and retries a dropped
connection a few times by itself). The commit each model resolved to is recorded in the run dir's
manifest (`pin_models`), and from there in generation.yaml and the card, so a rerun loads the same
weights.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topictree_hf.errors import HubError, ModelNotFoundError, RunDirError
from topictree_hf.progress import bars_disabled

if TYPE_CHECKING:
    from topictree_hf.config import Config

OFFLINE_VAR = "TOPICTREE_OFFLINE"
PINS = "model_revisions"  # manifest key: {model as the config names it: the commit it resolved to}
LOCAL_BACKENDS = ("transformers", "vllm", "auto")  # the backends that load weights here
_TRUE = ("1", "ON", "YES", "TRUE")  # huggingface_hub's own reading of a boolean variable


def user_offline(environ: Any = os.environ) -> bool:
    """Whether the user set the Hub libraries offline themselves."""
    return any(str(environ.get(v, "")).strip().upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def downloads_refused() -> bool:
    """`--offline` (the CLI's TOPICTREE_OFFLINE), or, without the CLI, the user's HF_HUB_OFFLINE."""
    value = os.environ.get(OFFLINE_VAR)
    if value is not None:
        return value.strip().upper() in _TRUE
    return user_offline()


def split_revision(model: str) -> tuple[str, str | None]:
    """`ORG/NAME@REV` -> ("ORG/NAME", "REV"); no `@` (or nothing after it): no revision."""
    repo_id, _, revision = model.partition("@")
    return repo_id, revision or None


def is_hub_id(model: str) -> bool:
    """`ORG/NAME[@REVISION]` that is not a bundled name or a local path (resolve_model's order)."""
    if model.startswith("bundled:") or os.path.exists(os.path.expanduser(model)) or model.endswith(".gguf"):
        return False
    return not (model.startswith((".", "/", "~")) or split_revision(model)[0].count("/") != 1
                or os.sep + os.sep in model)


def fetch(model: str) -> tuple[Path, str]:
    """The local snapshot folder of a Hub model and the commit it holds: from the cache, else
    downloaded now (unless downloads are refused: then today's one-line remedy)."""
    repo_id, revision = split_revision(model)
    folder = _cached(repo_id, revision)
    if folder is None:
        if downloads_refused():
            fix = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
            raise ModelNotFoundError(
                f"model {model} is not a local folder and not in the local Hugging Face cache; nothing is "
                f"downloaded at run time: fetch it first (`{fix}`) or pass a local folder")
        folder = _download(repo_id, revision)
    return folder, folder.name  # the cache keeps a snapshot per commit: snapshots/<commit hash>


def _cached(repo_id: str, revision: str | None) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:  # not cached, or a snapshot left incomplete (the download resumes)
        return None
    except ValueError:  # huggingface_hub's HFValidationError
        raise ModelNotFoundError(f"model {repo_id!r} is not a valid Hub model id; pass ORG/NAME[@REVISION], a "
                                 "local folder or a .gguf file") from None
    except OSError:
        return None


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = constants.ENDPOINT
    try:
        with _hub_online(constants):
            return Path(snapshot_download(repo_id, revision=revision, local_files_only=False,
                                          tqdm_class=_one_bar(repo_id)))
    except GatedRepoError:
        raise ModelNotFoundError(f"model {repo_id} is gated: accept its terms on its page on {where}, then log in "
                                 "(`hf auth login`, or set HF_TOKEN) and rerun") from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"model {repo_id} has no revision {revision!r} on {where}; pass a branch, a tag "
                                 "or a commit hash after the @") from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"model {repo_id} is not on {where}, or it is private: check the name, or log in "
                                 "(`hf auth login`, or set HF_TOKEN) for a private model") from None
    except LocalEntryNotFoundError as exc:  # the Hub could not be reached, and nothing is cached
        raise HubError(f"cannot reach {where} to download model {repo_id} ({_cause(exc)}): check the network and "
                       "rerun (a partial download resumes), or pass --offline and a local folder") from None
    except HfHubHTTPError as exc:
        raise HubError(f"downloading model {repo_id} from {where} failed ({_cause(exc)}); rerun the same "
                       "command to resume it") from None
    except Exception as exc:  # a connection dropped mid-file (after retries), or a file that came short
        if not _is_transfer_error(exc):
            raise
        raise HubError(f"the download of model {repo_id} stopped ({_cause(exc)}); rerun the same command to "
                       "resume it") from None


def _is_transfer_error(exc: BaseException) -> bool:
    from huggingface_hub.utils import httpx  # the HTTP library huggingface_hub is built on

    return isinstance(exc, (httpx.TransportError, OSError))


def _cause(exc: BaseException) -> str:
    """The first line of what went wrong, the underlying network error's when there is one."""
    root = exc.__cause__ or exc.__context__ or exc
    text = str(root).strip().splitlines()
    return f"{root.__class__.__name__}: {text[0]}" if text else root.__class__.__name__


@contextlib.contextmanager
def _hub_online(constants: Any) -> Iterator[None]:
    was = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = was


def _one_bar(repo_id: str) -> type:
    """snapshot_download draws three bars (files, bytes received, bytes written); show the last one,
    named after the model, unless bars are off (TOPICTREE_NO_PROGRESS, HF_HUB_DISABLE_PROGRESS_BARS)."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class OneBar(hub_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("name") == "huggingface_hub.snapshot_download" and not bars_disabled():
                kwargs["desc"] = f"downloading {repo_id}"
            else:
                kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
            """Keep "downloading ORG/NAME" to the end."""

    return OneBar


# ---------------------------------------------------------------- pinning a run to its weights


def run_models(config: Config) -> list[str]:
    """The Hub models a run loads: the engine's, and the judge's when it has its own."""
    if config.engine.backend not in LOCAL_BACKENDS:
        return []
    judge = config.generation.judge
    models = [config.engine.model, *([judge.model] if judge is not None and judge.model else [])]
    return [m for m in dict.fromkeys(models) if is_hub_id(m)]


def pin_models(config: Config, previous: Any = None, force: bool = False) -> dict[str, str]:
    """{model: commit} for each Hub model the run loads, fetched now when it is not cached (so every
    engine, a Ray actor's or the judge's, then finds it there). `previous`: the run dir's earlier
    pins; the cache answering another commit for the same name stops a resume unless `force`."""
    pins: dict[str, str] = {}
    old = previous if isinstance(previous, dict) else {}
    for model in run_models(config):
        _, commit = fetch(model)
        if old.get(model) not in (None, commit) and not force:
            repo_id = split_revision(model)[0]
            raise RunDirError(f"this run dir was made with {model} at commit {old[model]}, and the local cache now "
                              f"has commit {commit}: name it {repo_id}@{old[model]} (and pass --force) to keep "
                              "those weights, or pass --force to go on with the new ones")
        pins[model] = commit
    return pins


def pinned_name(model: str, pins: Any) -> str:
    """`ORG/NAME@COMMIT` for a pinned model (what generation.yaml names, so a rerun loads the same
    weights); any other model as it is."""
    commit = pins.get(model) if isinstance(pins, dict) else None
    return f"{split_revision(model)[0]}@{commit}" if isinstance(commit, str) and commit else model


def revision_rows(manifest: Any) -> list[tuple[str, str]]:
    """The card's rows naming the commit of each Hub model the run loaded."""
    pins = manifest.get(PINS) if isinstance(manifest, dict) else None
    if not isinstance(pins, dict):
        return []
    return [("model revision", f"{split_revision(m)[0]} at commit {c}") for m, c in pins.items() if isinstance(c, str)]
