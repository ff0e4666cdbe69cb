"""`topictree push DIR REPO_ID`: upload a built dataset folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from topictree_hf.cli.parser import Formatter

EXAMPLE = """examples:
  topictree push runs/historical-events/dataset your-name/historical-events-qa --dry-run
  topictree push runs/historical-events/dataset your-name/historical-events-qa --private
  HF_TOKEN=hf_... topictree push history-qa your-org/history-qa --revision v1
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="upload a dataset folder to the Hugging Face Hub", epilog=EXAMPLE,
                       formatter_class=Formatter,
                       description="Upload a folder made by `topictree build` to a dataset repo in one commit. "
                       "The token comes from HF_TOKEN or `hf auth login`; nothing local is changed.")
    p.add_argument("folder", metavar="DIR", help="the dataset folder `topictree build` wrote")
    p.add_argument("repo_id", metavar="REPO_ID", help="NAMESPACE/NAME of the dataset repo (created if missing)")
    vis = p.add_mutually_exclusive_group()
    vis.add_argument("--private", dest="private", action="store_true", default=None,
                     help="create the repo private (default: hub.private of generation.yaml, else private)")
    vis.add_argument("--public", dest="private", action="store_false", help="create the repo public")
    p.add_argument("--revision", metavar="R", default=None, help="branch to push to (created if missing)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded; contact nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from topictree_hf.cli.common import say
    from topictree_hf.dataset import push_dataset

    result = push_dataset(args.folder, args.repo_id, private=args.private, revision=args.revision,
                          dry_run=args.dry_run)
    if args.dry_run:
        visibility = "private" if result.private else "public"
        say(f"dry run: would upload {len(result.files)} file(s), {_size(result.total_bytes)}, to "
            f"{result.repo_id}@{result.revision} (created {visibility} if missing):")
        for path, size in result.files:
            print(f"{size:>14,}  {path}")
        return 0
    for path in result.deleted:
        say(f"  removed stale {path}")
    say(f"pushed {len(result.files)} file(s), {_size(result.total_bytes)}, to {result.repo_id}@{result.revision}")
    print(result.commit_url)
    return 0


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
