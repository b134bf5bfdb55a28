"""Push RELEASE_DIR to the Hugging Face Hub as a dataset repo, resumably.

The Hub copy must be byte for byte the folder that `load_dataset(RELEASE_DIR)` already reads, so
the files are uploaded as they are (not re-sharded by `push_to_hub`). For a large set the upload
is split into commits of `commit_every` files; before uploading, the repo's tree is listed and
files whose content is already there (same LFS sha256 or git blob id) are skipped, so a push that
was killed resumes where its last commit ended. The card goes in the last commit, together with
the removal of shards that are no longer part of the release, so the repo switches to the new
release in one step. The token comes from the environment (`HF_TOKEN` or the saved login) and is
never printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fairforge.errors import FairforgeError
from fairforge.manifest import file_sha256

from .release import CARD, DATA, release_files

if TYPE_CHECKING:
    from huggingface_hub.hf_api import RepoFile

log = logging.getLogger(__name__)
REPO_TYPE = "dataset"


@dataclass
class PushResult:
    repo_id: str
    uploaded: list[str]
    skipped: list[str]
    deleted: list[str]
    commits: int


def git_blob_id(path: Path) -> str:
    """The git object id of a file (what the Hub reports for files not stored in LFS)."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _already_there(remote: RepoFile | None, local: Path) -> bool:
    if remote is None or remote.size != local.stat().st_size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == file_sha256(local)
    return remote.blob_id == git_blob_id(local)


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Network and Hub failures as one-line `FairforgeError`s (the token is never in the message)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    http_bases = tuple(b for b in HfHubHTTPError.__mro__ if b.__name__ == "HTTPError")
    try:
        yield
    except OfflineModeIsEnabled:
        raise FairforgeError(
            f"--push {repo_id}: offline mode is on (HF_HUB_OFFLINE=1); unset it to push. The release folder is complete."
        ) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            reason = f"the Hub refused the token (HTTP {status}); check HF_TOKEN or run `hf auth login`"
        else:
            reason = f"the Hub answered HTTP {status}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        raise FairforgeError(f"--push {repo_id}: {reason}") from None
    except (OSError, *http_bases) as exc:  # type: ignore[misc]
        raise FairforgeError(
            f"--push {repo_id}: could not reach the Hub ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "rerun to resume the push"
        ) from None


def push_release(release_dir: str | Path, repo_id: str, private: bool = False, commit_every: int = 50) -> PushResult:
    """Upload every release file that the repo does not already hold; remove stale shards."""
    from huggingface_hub import HfApi, get_token

    release_dir = Path(release_dir)
    token = get_token()
    if not token:
        raise FairforgeError("--push needs a Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token, library_name="fairforge")
    with hub_errors(repo_id):
        return _push(api, release_dir, repo_id, private, commit_every)


def _push(api, release_dir: Path, repo_id: str, private: bool, commit_every: int) -> PushResult:  # type: ignore[no-untyped-def]
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.hf_api import RepoFile

    api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
    remote = {
        f.path: f for f in api.list_repo_tree(repo_id, repo_type=REPO_TYPE, recursive=True) if isinstance(f, RepoFile)
    }
    files = release_files(release_dir)
    todo = [f for f in files if not _already_there(remote.get(f), release_dir / f)]
    skipped = [f for f in files if f not in todo]
    stale = sorted(p for p in remote if p.startswith(f"{DATA}/") and p not in files)
    ordered = [f for f in todo if f != CARD] + [f for f in todo if f == CARD]
    batches = [ordered[i : i + commit_every] for i in range(0, len(ordered), commit_every)] or ([[]] if stale else [])
    for number, batch in enumerate(batches, start=1):
        additions = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(release_dir / f)) for f in batch]
        if additions:
            api.preupload_lfs_files(repo_id, additions=additions, repo_type=REPO_TYPE)
        last = number == len(batches)
        deletions = [CommitOperationDelete(path_in_repo=p) for p in stale] if last else []
        api.create_commit(
            repo_id,
            operations=[*additions, *deletions],
            commit_message=f"fairforge release ({number}/{len(batches)})",
            repo_type=REPO_TYPE,
        )
        log.info(
            "push: commit %d/%d (%d files%s)",
            number,
            len(batches),
            len(batch),
            f", {len(deletions)} removed" if deletions else "",
        )
    log.info("push: %s: %d uploaded, %d already there", repo_id, len(todo), len(skipped))
    return PushResult(repo_id, todo, skipped, stale, len(batches))
